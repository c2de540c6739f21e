"""Run the whole benchmark suite; each script writes `<out>/<name>.json` and prints its table.

    python bench/run_all.py                  # the real thing, ~35 min on 2 cores: results in bench/results/
    python bench/run_all.py --smoke --out /tmp/bench   # every script end to end on the tiny model (CI)
    python bench/run_all.py --smoke --jobs 2 ...       # the same, two scripts at a time (smoke mode only: a real
                                                       # run shares no cores, or its ratios mean nothing)

Each figure is a ratio against a named baseline measured in the same run (see each script's docstring). Run it on
an otherwise idle machine: the scripts record the load average they started under.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = {
    "encode": ["--n", "512"],
    "evaluate": [],
    "train_step": ["--steps", "50", "--fp32-reference"],
    "search": ["--queries", "50"],
    "speed_goals": ["--queries", "100"],
    "debias": [],
    "mkqa_nq": [],
}
SMOKE = {
    "encode": ["--model", "tiny", "--n", "16", "--no-engine", "--repeats", "2"],
    "evaluate": ["--model", "tiny", "--languages", "de", "--precisions", "fp32"],
    "train_step": ["--model", "tiny", "--steps", "3", "--batch-size", "8", "--mixed-precision", "fp32"],
    "search": ["--skip-pools", "--sizes", "1000"],
    "speed_goals": ["--model", "tiny", "--languages", "de", "--repeats", "1", "--skip-search"],
    "debias": ["--model", "tiny", "--n", "48", "--repeats", "1", "--limit", "400"],
    "mkqa_nq": ["--model", "tiny", "--passages", "40"],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny inputs: proves the scripts run, measures nothing")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--only", help="comma-separated subset of " + ", ".join(FULL))
    p.add_argument("--jobs", type=int, default=1, help="scripts run at once (--smoke only)")
    args = p.parse_args()
    plan = SMOKE if args.smoke else FULL
    names = args.only.split(",") if args.only else list(plan)
    unknown = [n for n in names if n not in plan]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(plan)}")
    if args.jobs < 1 or (args.jobs > 1 and not args.smoke):
        p.error("--jobs above 1 only with --smoke: the real benchmarks time themselves on otherwise idle cores")

    def run(name: str) -> int:
        start = time.perf_counter()
        out = Path(args.out) / f"{name}.json"
        command = [sys.executable, str(HERE / f"{name}.py"), *plan[name], "--out", str(out)]
        if args.jobs == 1:
            code = subprocess.call(command)
        else:  # side by side: each script's output printed whole when it ends, not interleaved
            proc = subprocess.run(command, capture_output=True, text=True)
            print(proc.stdout + proc.stderr, end="", flush=True)
            code = proc.returncode
        print(f"[{name}] {'ok' if code == 0 else f'FAILED ({code})'} in {time.perf_counter() - start:.0f} s -> {out}",
              flush=True)
        return code

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = dict(zip(names, pool.map(run, names)))
    return 1 if any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
