"""Two fine-tunes side by side on one thread each, against one fine-tune on every core: which gives more training
steps per second on this machine? (How the converged bundles' grids share the 2 cores.)

    python bench/side_by_side.py --out bench/results/side_by_side.json [--model me5-small --steps 20]

Every arm is `bench/train_step.py --arm fast_torch_dropout` (hybridviz's train with the step the converged bundles
train with, on the same MLQA-R batches, same seed) in a fresh process:
- **baseline**: one run with torch on all cores (OMP_NUM_THREADS = cores), nothing beside it;
- **one thread alone**: one run on one thread, nothing beside it;
- **side by side**: `cores` runs of one thread each, started together (each with OMP_WAIT_POLICY=PASSIVE).
Figures: median seconds per step of each run (the first step, with its lazy set-up, excluded); throughput =
steps per second summed over the runs that share the machine; ratio = throughput / the baseline's (higher is
better). Accuracy beside speed: the loss of every step of every arm against the baseline's (same batches, same
seed; threads change only the order of float sums).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, print_table, write_result

ARM = "fast_torch_dropout"


def _launch(model: str, steps: int, threads: int, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "train_step.py"), "--arm", ARM, "--model", model,
                             "--steps", str(steps), "--arm-out", str(out)], env=env, cwd=ROOT / "bench",
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"an arm failed (exit {p.returncode}):\n{err[-2000:]}")


def _step(path: Path) -> tuple[float, list[float]]:
    record = json.loads(path.read_text())
    stamps = record["stamps"]
    return statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:])), record["losses"]


def run(model: str, steps: int) -> dict:
    cores = os.cpu_count() or 1
    arms = [("baseline", cores, 1), ("one thread alone", 1, 1), ("side by side", 1, cores)]
    rows, losses = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, threads, copies in arms:
            outs = [Path(tmp) / f"{name}-{i}.json" for i in range(copies)]
            _wait([_launch(model, steps, threads, out) for out in outs])
            figures = [_step(out) for out in outs]
            losses[name] = [f[1] for f in figures]
            step_s = [f[0] for f in figures]
            rows.append({"arm": name, "runs": copies, "threads_each": threads,
                         "median_step_s": round(statistics.median(step_s), 3),
                         "throughput_steps_per_s": round(sum(1 / s for s in step_s), 3)})
    base = rows[0]["throughput_steps_per_s"]
    reference = losses["baseline"][0]
    for row in rows:
        row["throughput_ratio"] = round(row["throughput_steps_per_s"] / base, 3)
        row["max_loss_diff"] = round(max(abs(a - b) for run_ in losses[row["arm"]] for a, b in zip(run_, reference)),
                                     5)
    return {"model": model, "steps": steps, "arm": ARM, "cores": cores, "baseline": "one run on all cores",
            "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default="bench/results/side_by_side.json")
    args = p.parse_args()
    result = run(args.model, args.steps)
    write_result(args.out, "side_by_side", result)
    print_table(f"fine-tunes sharing {result['cores']} cores, {args.model}, {args.steps} steps each "
                f"(ratio = throughput / one run on all cores)", result["rows"],
                ["arm", "runs", "threads_each", "median_step_s", "throughput_steps_per_s", "throughput_ratio",
                 "max_loss_diff"])


if __name__ == "__main__":
    main()
