"""One real two-unit grid, serially and on a local Ray cluster, in one run: the wall-time ratio and the memory.

    python bench/executors.py [--out bench/results/executors.json] [--model me5-small --steps 20]
    python bench/executors.py --smoke          # the tiny model, 2 steps, a 20-group sample (checks it runs)

Both arms run the same grid (`--samplers` x seed 0, `--steps` steps, one evaluation: `--task` on a seeded
`--limit` sample) into a bundle, a run registry and an embedding cache of their own, each in a fresh process
(`--arm`), so that neither inherits the other's loaded models or embeddings. The parent samples the RSS of each arm's whole process tree every
0.5 s (for the Ray arm: its driver, the GCS server, the raylet and its workers). Figures: wall time from the
process's start to its end (the Ray arm includes starting and stopping its cluster), peak RSS, the ratio
Ray / serial (below 1: Ray is faster), and whether the two bundles summarise alike (the figures of
`tests/test_executors.py`'s oracle; on bf16 CPUs threads may round differently, and this says so).

- serial: `run_grid` with the default executor (torch's threads: all the cores);
- ray: `RayExecutor(num_cpus=<cores>, cpus_per_unit=--cpus-per-unit)`: with 1 CPU per unit on 2 cores, both
  units train and evaluate side by side, each with one thread.
The figure that matters on a cluster (units on separate machines) is not this one: on one machine Ray can only
reorder the same cores' work, and its cost is the engine (bench/ray_cost.py) and the lost threads per unit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, print_table, write_result


class TreeMemory(threading.Thread):
    """Peak RSS (MB) of a process and everything below it, sampled every 0.5 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.peak_mb, self.peak_processes = psutil.Process(pid), 0.0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            total, count = 0, 0
            try:
                for p in [self.proc, *self.proc.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                        count += 1
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            if total / 2 ** 20 > self.peak_mb:
                self.peak_mb, self.peak_processes = total / 2 ** 20, count
            self.stop.wait(0.5)


def science(summary):
    """summary.json less provenance, dates and wall times (as tests/test_executors.py compares them)."""
    drop = {"provenance", "created", "updated", "wall_s", "generated", "machine", "sessions"}
    if isinstance(summary, dict):
        return {k: science(v) for k, v in summary.items() if k not in drop and not k.endswith("_s")}
    if isinstance(summary, list):
        return [science(v) for v in summary]
    return summary


def spec(args):
    from hybridviz.experiments.grid import GridSpec

    return GridSpec(model=args.model, samplers=args.samplers.split(","), seeds=[0], steps=args.steps, alphas=[],
                    methods=[], sampler_method=None, warmup_steps=0,
                    evaluations=[{"task": args.task, "languages": None, "limit": args.limit}],
                    **({"precision": "fp32", "train_precision": "fp32", "batch_size": 8} if args.model == "tiny"
                       else {}))


def arm(args) -> None:
    """One arm, in this (fresh) process: the grid into <work>/<arm>/bundle; prints one JSON line."""
    from hybridviz.experiments.executors import RayExecutor, SerialExecutor
    from hybridviz.experiments.grid import plan, run_grid

    grid = spec(args)
    only = [u.label for u in plan(grid) if u.config is not None]  # the fine-tunes: no base unit
    executor = SerialExecutor() if args.arm == "serial" else RayExecutor(
        num_cpus=len(os.sched_getaffinity(0)), cpus_per_unit=args.cpus_per_unit, max_retries=0)
    work = Path(args.work) / args.arm
    start = time.perf_counter()
    manifest = run_grid(work / "bundle", grid, log=lambda m: print(m, file=sys.stderr, flush=True), only=only,
                        runs_root=work / "runs", executor=executor)
    units = {label: manifest["units"][label] for label in only}
    print(json.dumps({"grid_s": time.perf_counter() - start, "units": {
        label: {"state": s["state"], "wall_s": s["wall_s"], "ran_on": s.get("ran_on", [])[-1:]}
        for label, s in units.items()}}))


def run_arm(args, which: str, work: str) -> dict:
    command = [sys.executable, __file__, "--arm", which, "--work", work, "--model", args.model,
               "--steps", str(args.steps), "--samplers", args.samplers, "--task", args.task,
               "--limit", str(args.limit), "--cpus-per-unit", str(args.cpus_per_unit)]
    start = time.perf_counter()
    # an embedding cache of its own: neither arm reads what the other encoded (the fine-tunes are the same models)
    env = {**os.environ, "HYBRIDVIZ_EMBEDDINGS": str(Path(work) / which / "embeddings")}
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    memory = TreeMemory(proc.pid)
    memory.start()
    out, err = proc.communicate(timeout=args.timeout)
    wall = time.perf_counter() - start
    memory.stop.set()
    memory.join()
    if proc.returncode:
        raise SystemExit(f"{which} arm failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {"arm": which, "wall_s": round(wall, 1), "grid_s": round(result["grid_s"], 1),
            "peak_rss_mb": round(memory.peak_mb), "processes_at_peak": memory.peak_processes,
            "units": result["units"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "executors.json"))
    p.add_argument("--model", default="me5-small")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--samplers", default="x-y,hybrid", help="one unit each (seed 0)")
    p.add_argument("--task", default="xquad-r")
    p.add_argument("--limit", type=int, default=100, help="evaluate a seeded sample of this many groups")
    p.add_argument("--cpus-per-unit", type=float, default=1)
    p.add_argument("--order", default="serial,ray", help="which arm first")
    p.add_argument("--timeout", type=int, default=7200)
    p.add_argument("--smoke", action="store_true", help="--model tiny --steps 2 --limit 20")
    p.add_argument("--arm", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.arm:
        return arm(args)
    if args.smoke:
        args.model, args.steps, args.limit = "tiny", 2, 20
    with tempfile.TemporaryDirectory(prefix="bench-executors-") as work:
        arms = {which: run_arm(args, which, work) for which in args.order.split(",")}
        from hybridviz.results.store import read_summary

        summaries = [read_summary(Path(work) / which / "bundle") for which in ("serial", "ray")]
    same = science(summaries[0]) == science(summaries[1])
    ratio = arms["ray"]["wall_s"] / arms["serial"]["wall_s"]
    rows = [{k: v for k, v in a.items() if k != "units"} for a in arms.values()]
    print_table(f"{args.model}: {args.samplers} x {args.steps} steps, {args.task} (limit {args.limit})", rows,
                ["arm", "wall_s", "grid_s", "peak_rss_mb", "processes_at_peak"])
    print(f"\nwall time ray / serial: {ratio:.2f}; peak RSS ray / serial: "
          f"{arms['ray']['peak_rss_mb'] / arms['serial']['peak_rss_mb']:.2f}; same summary: {same}")
    import ray

    path = write_result(args.out, "executors", {
        "ray": ray.__version__, "grid": {"model": args.model, "samplers": args.samplers, "steps": args.steps,
                                         "task": args.task, "limit": args.limit,
                                         "cpus_per_unit": args.cpus_per_unit},
        "arms": arms, "rows": rows, "ratio_wall_ray_over_serial": round(ratio, 3),
        "ratio_peak_rss_ray_over_serial": round(arms["ray"]["peak_rss_mb"] / arms["serial"]["peak_rss_mb"], 3),
        "same_summary": same, "smoke": args.smoke})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
