"""How long the command line takes to answer where it has nothing to compute (issue #32, item 4: under 1.5 s).

    python bench/cli_start.py --before /path/to/a/checkout/of/the/old/code    # before and after, one run
    python bench/cli_start.py --repeats 5                                      # this checkout alone

Each invocation is `python -m hybridviz <args>` in a fresh process, wall-clock from start to exit, run `--repeats`
times; the minimum is the figure (the least disturbed by other work on the machine), the median is recorded too.
Baselines measured in the same run: the bare interpreter (`python -c pass`) and `import hybridviz` (the package's
import-time code snapshot), which no command can undercut; and, with `--before`, the same invocations run from
another checkout (cwd there, so `-m hybridviz` imports its code).

`data` is timed twice: with its per-language counts remembered (cache/data-status.json, the usual case) and on
a first call, with an empty cache folder (HYBRIDVIZ_CACHE), where it parses every data file once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, write_result

BUNDLE = "cache/reference/sampler-grid"
INVOCATIONS = {
    "--help": ["--help"],
    "unknown flag": ["evaluate", "--no-such-flag"],
    "missing required option": ["evaluate"],
    "unknown command": ["evaluat"],
    "data": ["data"],
    "summarise --read": ["summarise", BUNDLE, "--read"],
}
BASELINES = {"python -c pass": ["-c", "pass"], "import hybridviz": ["-c", "import hybridviz"]}


def seconds(argv: list[str], cwd: Path, repeats: int, module: bool = True, fresh_cache: bool = False) -> dict:
    times, codes = [], set()
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as empty:
            env = {**os.environ, **({"HYBRIDVIZ_CACHE": empty} if fresh_cache else {})}
            start = time.perf_counter()
            done = subprocess.run([sys.executable, *(["-m", "hybridviz"] if module else []), *argv], cwd=cwd,
                                  capture_output=True, env=env)
            times.append(time.perf_counter() - start)
        codes.add(done.returncode)
    return {"min_s": round(min(times), 3), "median_s": round(statistics.median(times), 3),
            "runs_s": [round(t, 3) for t in times], "exit_codes": sorted(codes)}


def run(repeats: int, before: Path | None, before_repeats: int) -> dict:
    rows = []
    for name, argv in BASELINES.items():
        rows.append({"invocation": name, "after": seconds(argv, ROOT, repeats, module=False)})
    for name, argv in INVOCATIONS.items():
        row = {"invocation": name, "after": seconds(argv, ROOT, repeats)}
        if before is not None:
            row["before"] = seconds(argv, before, before_repeats)
        rows.append(row)
        if name == "data":  # a first call: nothing remembered, every file parsed (a new empty cache each run)
            rows.append({"invocation": "data (first call, counts not yet remembered)",
                         "after": seconds(argv, ROOT, max(1, repeats // 2), fresh_cache=True)})
    return {"repeats": repeats, "before_repeats": before_repeats if before else 0,
            "before_checkout": str(before) if before else None, "goal_s": 1.5,
            "nice": os.nice(0), "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--before", type=Path, help="a checkout of the code to compare with (its `python -m hybridviz`)")
    p.add_argument("--before-repeats", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "cli_start.json"))
    args = p.parse_args()
    result = run(args.repeats, args.before, args.before_repeats)
    path = write_result(args.out, "cli_start", result)
    table = [{"invocation": r["invocation"], "before min s": r.get("before", {}).get("min_s"),
              "after min s": r["after"]["min_s"], "after median s": r["after"]["median_s"],
              "exit": r["after"]["exit_codes"]} for r in result["rows"]]
    print_table("python -m hybridviz: seconds to answer (minimum of the runs)", table,
                ["invocation", "before min s", "after min s", "after median s", "exit"])
    print(f"\n-> {path}")


if __name__ == "__main__":
    main()
