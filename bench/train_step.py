"""Median seconds per training step of one fine-tune at the CPU defaults.

    python bench/train_step.py --model me5-small --sampler hybrid --steps 20

A plain measurement for planning the experiment grid; the comparison against a plain sentence-transformers
`fit` (the speed issue's ratio) is still to come. Runs in a temporary run registry, which it deletes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybridviz.training.trainer import TrainConfig, train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--sampler", default="hybrid")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--mixed-precision", choices=["fp32", "bf16"], help="default: bf16 where the CPU has it")
    args = p.parse_args()
    config = TrainConfig(model=args.model, sampler=args.sampler, steps=args.steps, batch_size=args.batch_size,
                         warmup_steps=min(2, args.steps), save_steps=10 ** 6)
    if args.mixed_precision:
        config.mixed_precision = args.mixed_precision
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        run = train(config, root=Path(root))
        total = time.perf_counter() - start
        log = run.train_log()
    gaps = [b["seconds"] - a["seconds"] for a, b in zip(log, log[1:])]
    print(json.dumps({"model": args.model, "sampler": args.sampler, "batch_size": args.batch_size,
                      "mixed_precision": config.mixed_precision,
                      "steps": args.steps, "median_step_s": round(statistics.median(gaps), 3),
                      "total_s": round(total, 1), "first_loss": round(log[0]["loss"], 3),
                      "last_loss": round(log[-1]["loss"], 3)}))


if __name__ == "__main__":
    main()
