"""What the Ray engine costs before any unit runs: the time of `import ray`, and the memory of a local cluster.

    python bench/ray_cost.py [--out bench/results/ray_cost.json] [--repeats 3] [--smoke]

- **import time**: `import ray` in a fresh interpreter, `--repeats` times (the first is the cold one: files not yet
  in the page cache), beside the bare interpreter and `import torch` (which every grid imports anyway), each in
  its own process.
- **memory of a local cluster**: the cluster `--executor ray` starts without an address (`RayExecutor.connect`:
  this machine's cores, no dashboard, a 128 MB object store), measured over the process tree of its driver
  (this script: the GCS server, the raylet, its agents and workers are all below it) with psutil, RSS and PSS
  (PSS shares each shared page among the processes that map it: the honest sum), at four moments: the driver
  with the grid's code imported (torch), after `import ray`, after `ray.init`, and after two trivial tasks have
  run (their workers started); then by kind of process. The workers of a real unit import torch and the model on
  top of this, as a serial grid's process does. Whether ray[default]'s extras are installed is recorded: with
  them the cluster runs heavier agents.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import ROOT, print_table, write_result

IMPORTS = {"bare interpreter": "pass", "import ray": "import ray", "import torch": "import torch"}
# the processes of a local cluster, by a piece of their command line (the first that matches)
KINDS = (("gcs_server", "gcs_server"), ("raylet", "raylet/raylet"), ("dashboard agent", "DashboardAgent"),
         ("runtime-env agent", "RuntimeEnvAgent"), ("dashboard head", "dashboard/dashboard.py"),
         ("log monitor", "log_monitor"), ("autoscaler monitor", "monitor.py"), ("worker", "ray::"),
         ("worker", "default_worker"))


def import_seconds(code: str, repeats: int) -> list[float]:
    probe = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, cwd=ROOT,
                              timeout=600)
        if done.returncode:
            raise SystemExit(done.stderr[-2000:])
        out.append({"in_process_s": float(done.stdout.strip().splitlines()[-1]),
                    "process_s": time.perf_counter() - start})
    return out


def tree_memory() -> dict:
    """RSS and PSS (MB) of this process and everything below it, by kind of process."""
    import psutil

    me = psutil.Process()
    kinds: dict[str, dict] = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            name = " ".join(proc.cmdline()[:3]) or proc.name()
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        kind = "driver" if proc.pid == me.pid else next(
            (kind for kind, needle in KINDS if needle in name), "other")
        entry = kinds.setdefault(kind, {"processes": 0, "rss_mb": 0.0, "pss_mb": 0.0})
        entry["processes"] += 1
        entry["rss_mb"] += info.rss / 2 ** 20
        entry["pss_mb"] += getattr(info, "pss", info.rss) / 2 ** 20
    total = {"processes": sum(k["processes"] for k in kinds.values()),
             "rss_mb": round(sum(k["rss_mb"] for k in kinds.values()), 1),
             "pss_mb": round(sum(k["pss_mb"] for k in kinds.values()), 1)}
    return {"total": total, "by_kind": {k: {**v, "rss_mb": round(v["rss_mb"], 1), "pss_mb": round(v["pss_mb"], 1)}
                                        for k, v in sorted(kinds.items())}}


def cluster_memory(num_cpus: int, settle_s: float) -> dict:
    from hybridviz.experiments.executors import RayExecutor  # the grid's driver: torch and the library imported

    stages = {"driver, before import ray": tree_memory()}
    start = time.perf_counter()
    import ray

    stages["after import ray"] = tree_memory()
    stages["after import ray"]["seconds"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    RayExecutor(num_cpus=num_cpus).connect()  # the local cluster `--executor ray` starts
    init_s = time.perf_counter() - start
    time.sleep(settle_s)
    stages["after ray.init (local cluster)"] = {**tree_memory(), "seconds": round(init_s, 2)}

    @ray.remote(num_cpus=1)
    def nothing(i):
        return i

    start = time.perf_counter()
    ray.get([nothing.remote(i) for i in range(num_cpus)])
    tasks_s = time.perf_counter() - start
    time.sleep(settle_s)
    stages[f"after {num_cpus} trivial tasks"] = {**tree_memory(), "seconds": round(tasks_s, 2)}
    ray.shutdown()
    return stages


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "ray_cost.json"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num-cpus", type=int, default=2, help="the local cluster's CPUs (and trivial tasks)")
    p.add_argument("--smoke", action="store_true", help="one repeat, no settling time")
    args = p.parse_args()
    repeats = 1 if args.smoke else args.repeats
    rows = []
    for what, code in IMPORTS.items():
        runs = import_seconds(code, repeats)
        rows.append({"what": what, "first_s": round(runs[0]["in_process_s"], 3),
                     "median_s": round(statistics.median(r["in_process_s"] for r in runs), 3),
                     "median_process_s": round(statistics.median(r["process_s"] for r in runs), 3),
                     "repeats": len(runs)})
    print_table("import time (a fresh interpreter each)", rows, ["what", "first_s", "median_s", "median_process_s"])
    stages = cluster_memory(args.num_cpus, 0.0 if args.smoke else 3.0)
    table = [{"moment": moment, "processes": s["total"]["processes"], "rss_mb": s["total"]["rss_mb"],
              "pss_mb": s["total"]["pss_mb"], "seconds": s.get("seconds")} for moment, s in stages.items()]
    print_table("memory of the process tree (driver + local cluster)", table,
                ["moment", "processes", "rss_mb", "pss_mb", "seconds"])
    import ray

    base = stages["driver, before import ray"]["total"]["pss_mb"]
    engine = table[-1]["pss_mb"] - base
    for moment, stage in list(stages.items())[-1:]:
        print_table(f"by process, {moment}", [{"kind": k, **v} for k, v in stage["by_kind"].items()],
                    ["kind", "processes", "rss_mb", "pss_mb"])
    extras = sorted(name for name in ("aiohttp", "opencensus", "grpc") if _installed(name))
    print(f"\nthe engine: {engine:.0f} MB PSS over the driver; ray {ray.__version__}"
          f"{' with ray[default] extras (' + ', '.join(extras) + ')' if extras else ' (core)'}")
    path = write_result(args.out, "ray_cost", {
        "ray": ray.__version__, "imports": rows, "cluster": stages, "rows": table,
        "engine_pss_mb": round(engine, 1), "num_cpus": args.num_cpus, "default_extras_installed": extras,
        "note": "PSS shares shared pages among the processes mapping them (RSS counts them in each)"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
