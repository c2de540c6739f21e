"""Where a grid's units run: the executors of `run_grid` (experiments/grid.py).

- `SerialExecutor` (the default): one unit after another in this process, as the grid has always run.
- `RayExecutor`: each *job* is one task of a Ray cluster with declared resources (CPUs; one GPU where the cluster
  has GPUs): a fine-tune with its evaluations and the training-free method units on its weights, or the base
  with its methods. Without an address it starts a local cluster on this machine (the embedded default); with
  `address` ("auto", "host:port") it joins a running one (`ray start --head` / `ray start --address`, a cluster
  launched on SLURM or Kubernetes: docs/cluster.md).

Both run a unit through the same steps (`grid.run_unit`), so results reach the bundle through the same store
functions and the same atomic, resumable writes: every evaluation is written into <task>.partial/ and swapped in
whole. Only the process that called `run_grid` (the *driver*) writes manifest.json, summary.json and
progress.json: a Ray worker sends its units' states to the driver (a queue), never to the manifest, so no two
processes ever write one file. A Ray worker needs the bundle, the run registry and the data at the same paths
as the driver (one machine, or a shared filesystem).

Provenance: each unit's manifest state gains `ran_on`, one record per invocation that did work on it: the
executor, the host, Ray's node id, the device (cpu / cuda) and the GPU's name, and `ddp_processes` where that
invocation trained the unit's run with several DDP processes (the unit's `ddp` record says how its weights were
trained).

Several processes per unit (`ddp_procs`, `--ddp-procs-per-unit`; default 1, never implied by the GPUs a unit
holds, since n processes train on n batches a step and so name another run): the unit's fine-tune runs under
`torchrun --standalone --nproc_per_node=<n>` (training/distributed.py) and the unit waits for it, then evaluates
the saved model in its own process as before.
A failed torchrun is the unit's error (the tail of its stderr, then the failing rank's error); docs/cluster.md.

Faults: a job whose worker (or node) dies is submitted again with the bundle's current state, up to
`max_retries` times (the driver counts the attempts; a retry continues the fine-tune from its last checkpoint and
skips finished evaluations). A job that keeps dying, or raises, is reported with its error; the others go on,
what it left half-written (<task>.partial/) is removed, and `run_grid` then ends with one error naming the failed
units (finished units are kept: rerun the same command to retry them).

Progress: progress.json in the bundle holds each unit's state (queued, running on <host>, done, failed with its
error; `results.store.progress_rows` reads it for the Study page), and every change is logged on the command
line.
"""

from __future__ import annotations

import json
import os
from collections import Counter
import socket
import time
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path

from hybridviz.errors import HybridvizError
from hybridviz.experiments.grid import Grid, Unit, run_unit
from hybridviz.results.store import describe_progress as describe, remove_pending, unit_folder, write_progress

EXECUTORS = ("serial", "ray")
ROOT = Path(__file__).resolve().parents[2]  # put on the Ray workers' PYTHONPATH
RAY_INSTALL = "pip install -r requirements-ray.txt"
RAY_TMP = os.environ.get("HYBRIDVIZ_RAY_TMP", "/tmp/hybridviz-ray")  # short: Ray's unix sockets live below it
LOCAL_OBJECT_STORE = 128 * 1024 * 1024  # a local cluster's object store: the tasks pass only small records


# ------------------------------------------------------------------------------------------------ progress


class Progress:
    """The units of this invocation and their states, written to the bundle's progress.json (by the driver
    only) and logged on every change."""

    def __init__(self, grid: Grid, units: list[Unit], executor: dict):
        self.grid, self.executor = grid, executor
        self.units = {u.label: {"state": "queued"} for u in units}
        self.started = time.time()
        self.write()

    def set(self, labels: list[str], state: str, quiet: bool = False, **fields) -> None:
        """`labels` now in `state`, written; logged with the counts unless `quiet`."""
        for label in labels:
            old = self.units.get(label, {})
            keep = {k: v for k, v in old.items() if k in ("host", "node_id", "device", "attempt")}
            self.units[label] = {**keep, "state": state, **fields, "since": round(time.time(), 1)}
            if not quiet:
                self.grid.log(f"[{label}] {describe(self.units[label])}")
        self.write()
        if quiet:
            return
        counts = Counter(entry["state"] for entry in self.units.values())
        self.grid.log("progress: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))

    def write(self) -> None:
        write_progress(self.grid.out, {"executor": self.executor, "started": round(self.started, 1),
                                       "updated": round(time.time(), 1), "units": self.units})


def here(executor: str) -> dict:
    """This process's host and device: a `ran_on` record."""
    from hybridviz.encoders.policy import encoding_device
    from hybridviz.provenance import machine

    record = {"executor": executor, "host": socket.gethostname(), "device": encoding_device()}
    gpu = machine().get("gpu")
    if gpu:
        record["gpu"] = gpu["name"]
    return record


def run_recorded(grid: Grid, unit: Unit, where: dict) -> bool:
    """`run_unit`, with `where` appended to the unit's `ran_on` records when it did any work (a unit that was
    finished already keeps the record of where it ran); True when it did."""
    state = grid.state(unit)
    earlier = list(state.get("ran_on", []))
    before = _plain(state)
    state["ran_on"] = earlier + [{**where, "at": round(time.time(), 1)}]
    trained_before = state.get("wall_s", {}).get("train")
    worked = True
    try:
        run_unit(grid, unit)
    finally:
        state = grid.state(unit)
        if state.get("ddp") and state.get("wall_s", {}).get("train") != trained_before and state.get("ran_on"):
            state["ran_on"][-1]["ddp_processes"] = state["ddp"]["processes"]  # this invocation trained it so
        if _plain(state) == before:  # nothing done: nothing saved, and no record of a run
            worked = False
            if earlier:
                state["ran_on"] = earlier
            else:
                state.pop("ran_on", None)
    if state.get("state") == "done":
        state.pop("error", None)  # an earlier invocation's failure, now behind it
    return worked


def _plain(state: dict) -> str:
    return json.dumps({k: v for k, v in state.items() if k != "ran_on"}, sort_keys=True, default=str)


def _record_session(grid: Grid, executor: dict) -> None:
    sessions = grid.manifest.get("sessions") or []
    if sessions:
        sessions[-1]["executor"] = executor


# ------------------------------------------------------------------------------------------------ serial


@dataclass
class SerialExecutor:
    """One unit after another in this process (the default). The first error stops the grid. Its progress is
    written for every unit, and logged for the units that did work (their own lines say what they do; a rerun of
    a finished grid says nothing). `ddp_procs` > 1: each fine-tune under torchrun with that many processes."""

    ddp_procs: int = 1

    def describe(self) -> dict:
        return {"kind": "serial", **({"ddp_procs": self.ddp_procs} if self.ddp_procs > 1 else {})}

    def run(self, grid: Grid, units: list[Unit]) -> None:
        grid.train_procs = self.ddp_procs
        _record_session(grid, self.describe())
        progress = Progress(grid, units, self.describe())
        where = here("serial")
        for unit in units:
            progress.set([unit.label], "running", quiet=True, host=where["host"], device=where["device"])
            try:
                worked = run_recorded(grid, unit, where)
            except BaseException as exc:
                progress.set([unit.label], "failed", error=f"{type(exc).__name__}: {exc}")
                raise
            progress.set([unit.label], "done", quiet=not worked)


# ------------------------------------------------------------------------------------------------ Ray


def import_ray():
    try:
        import ray
    except ImportError:
        raise HybridvizError(f"--executor ray needs the ray package, which is not installed: {RAY_INSTALL}") \
            from None
    return ray


def unit_jobs(units: list[Unit]) -> list[list[Unit]]:
    """The units grouped into jobs, in the plan's order: a fine-tune and the +method units on its weights (one
    run: trained once, by one worker), the base and its training-free methods."""
    jobs: dict[str, list[Unit]] = {}
    for unit in units:
        jobs.setdefault(unit.config.run_id() if unit.config is not None else "base", []).append(unit)
    return list(jobs.values())


@dataclass
class WorkerGrid(Grid):
    """The grid as a Ray worker sees it: the driver's states of its job's units; `save` sends them to the driver
    (which writes the manifest and the summary) instead of writing anything."""

    events: object = None
    labels: tuple = ()

    def save(self, summary: bool = False, final: bool = False) -> None:
        self.events.put({"kind": "save", "summary": summary,
                         "states": {label: deepcopy(self.states[label]) for label in self.labels
                                    if label in self.states}})


def limit_threads(threads: int) -> None:
    """Every thread pool of this process to `threads`: torch's, faiss's OpenMP, the BLAS of numpy and scipy.
    (The figures of a unit depend on it in their last bits: sums split over threads round differently.)"""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        pass


def run_job(job: dict, events) -> dict:
    """A Ray task: the job's units, step by step, into the bundle (a worker's side of `RayExecutor`)."""
    import ray

    limit_threads(max(1, int(job["cpus"])))  # the cores the task declared, not the node's
    where = {**here("ray"), "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
    events.put({"kind": "start", "labels": job["labels"], "where": where})
    options = job["options"]
    grid = WorkerGrid(out=Path(job["out"]), spec=job["spec"], manifest={"units": deepcopy(job["states"])},
                      log=lambda message: events.put({"kind": "log", "message": message}),
                      runs_root=Path(options["runs_root"]) if options["runs_root"] else None,
                      refresh=options["refresh"], tasks=options["tasks"],
                      replace_retrained=options["replace_retrained"], summarise=False, units=job["units"],
                      train_slot="run", train_procs=int(options.get("train_procs", 1)), events=events,
                      labels=tuple(job["labels"]))
    for unit in (u for u in job["units"] if u.label in job["labels"]):
        run_recorded(grid, unit, {k: v for k, v in where.items() if k != "pid"})
        events.put({"kind": "unit done", "label": unit.label})
    return {"states": {label: grid.states[label] for label in job["labels"] if label in grid.states},
            "where": where}


@dataclass
class RayExecutor:
    """Each job a Ray task. `address`: None starts a local cluster of `num_cpus` CPUs (default: this machine's
    cores; its GPUs are found by Ray); "auto" or "host:port" joins a running cluster. `cpus_per_unit` and
    `gpus_per_unit` (None: 1 where the cluster has a GPU, else 0) are each task's declared resources.
    `max_retries`: resubmissions of a job whose worker or node died. `ddp_procs`: processes per fine-tune (DDP
    under torchrun inside the task); None: 1 (no torchrun), whatever GPUs the task holds."""

    address: str | None = None
    cpus_per_unit: float = 2
    gpus_per_unit: float | None = None
    max_retries: int = 2
    num_cpus: int | None = None  # a local cluster's size
    ddp_procs: int | None = None
    poll_s: float = 0.5

    def describe(self) -> dict:
        return {"kind": "ray", "address": self.address or "local", "cpus_per_unit": self.cpus_per_unit,
                "gpus_per_unit": self.gpus_per_unit, "max_retries": self.max_retries, "ddp_procs": self.ddp_procs}

    def processes(self, gpus: float) -> int:
        """Training processes per unit: `ddp_procs`, else 1. DDP is asked for, never implied by a unit's GPUs: n
        processes train on n batches a step, another experiment than one process (the run id says so)."""
        return int(self.ddp_procs) if self.ddp_procs is not None else 1

    # -- the cluster

    def connect(self) -> bool:
        """Join (or start) the cluster; True where this call started the connection (and `run` ends it), False
        where this process was connected already (a caller's own `ray.init`)."""
        ray = import_ray()
        if ray.is_initialized():
            return False
        env = {k: v for k, v in os.environ.items() if k.startswith("HYBRIDVIZ_") or k in ("OMP_WAIT_POLICY",)}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        runtime_env = {"env_vars": env}
        try:
            if self.address:
                ray.init(address=self.address, runtime_env=runtime_env, log_to_driver=False)
            else:
                # "local": a new cluster of its own, even where `ray start` left one (or its address file) behind
                ray.init(address="local", num_cpus=self.num_cpus or len(os.sched_getaffinity(0)),
                         include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE, _temp_dir=RAY_TMP,
                         runtime_env=runtime_env, log_to_driver=False)
        except ConnectionError as exc:
            raise HybridvizError(f"No Ray cluster at {self.address}: {exc} (start one with `ray start --head`, or "
                                 "leave out --ray-address for a local cluster).") from None
        return True

    def resources(self, ray) -> tuple[float, float]:
        """(cpus, gpus) per task, checked against the largest node: a task no node can hold would wait forever."""
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        most_cpus = max((r.get("CPU", 0) for r in nodes), default=0)
        most_gpus = max((r.get("GPU", 0) for r in nodes), default=0)
        gpus = self.gpus_per_unit if self.gpus_per_unit is not None else (1 if most_gpus >= 1 else 0)
        if self.cpus_per_unit > most_cpus:
            raise HybridvizError(f"--ray-cpus-per-unit {self.cpus_per_unit:g}: the largest node of the cluster "
                                 f"has {most_cpus:g} CPUs.")
        if gpus > most_gpus:
            raise HybridvizError(f"--ray-gpus-per-unit {gpus:g}: the largest node of the cluster has "
                                 f"{most_gpus:g} GPUs.")
        return self.cpus_per_unit, gpus

    # -- the grid

    def run(self, grid: Grid, units: list[Unit]) -> None:
        ray = import_ray()
        started = self.connect()
        try:
            self._run(ray, grid, units)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, grid: Grid, units: list[Unit]) -> None:
        from ray.util.queue import Queue

        cpus, gpus = self.resources(ray)
        procs = self.processes(gpus)
        for unit in units:  # the manifest lists the units in the plan's order, whichever finishes first
            grid.state(unit)
        described = {**self.describe(), "gpus_per_unit": gpus, "ddp_procs": procs,
                     "cluster": {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}}
        _record_session(grid, described)
        grid.save()
        progress = Progress(grid, units, described)
        grid.log(f"Ray cluster {described['cluster']}: {len(units)} units as {len(unit_jobs(units))} tasks of "
                 f"{cpus:g} CPU{'s' if cpus != 1 else ''}" + (f" and {gpus:g} GPU" if gpus else "")
                 + (f", each fine-tune as {procs} DDP processes (torchrun)" if procs > 1 else ""))
        events = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_job)  # retries: the driver's
        jobs = unit_jobs(units)
        options = {"runs_root": str(grid.runs_root) if grid.runs_root else None, "refresh": grid.refresh,
                   "tasks": grid.tasks, "replace_retrained": grid.replace_retrained, "train_procs": procs}
        attempts = [0] * len(jobs)
        pending: dict = {}
        failed: dict[str, str] = {}

        def submit(i: int) -> None:
            attempts[i] += 1
            labels = [u.label for u in jobs[i]]
            job = {"out": str(Path(grid.out).resolve()), "spec": grid.spec, "units": grid.units, "labels": labels,
                   "states": {label: deepcopy(grid.states[label]) for label in labels if label in grid.states},
                   "options": options, "cpus": cpus}
            pending[task.options(name=f"hybridviz {labels[0]}").remote(job, events)] = i
            if attempts[i] > 1:
                progress.set(labels, "queued", attempt=attempts[i])

        def apply(event: dict) -> None:
            if event["kind"] == "log":
                grid.log(event["message"])
            elif event["kind"] == "start":
                where = event["where"]
                i = next(j for j, job in enumerate(jobs) if job[0].label == event["labels"][0])
                progress.set(event["labels"], "running", host=where["host"], node_id=where["node_id"],
                             device=where["device"], attempt=attempts[i])
            elif event["kind"] == "save":
                grid.states.update(event["states"])
                grid.save(summary=event["summary"])
            elif event["kind"] == "unit done":
                progress.set([event["label"]], "done")

        def drain() -> None:
            size = events.qsize()
            if size:
                for event in events.get_nowait_batch(size):
                    apply(event)

        def fail(i: int, error: str) -> None:
            labels = [u.label for u in jobs[i]]
            for label in labels:
                removed = remove_pending(unit_folder(grid.out, label))
                if removed:
                    grid.log(f"[{label}] removed what an unfinished evaluation left: {', '.join(removed)}")
                state = grid.states.setdefault(label, {"wall_s": {}})
                if state.get("state") != "done":
                    state.update(state="failed", error=error)
                    failed[label] = error
            grid.save()
            progress.set(labels, "failed", error=error)

        try:
            for i in range(len(jobs)):
                submit(i)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
                drain()
                for ref in ready:
                    i = pending.pop(ref)
                    labels = [u.label for u in jobs[i]]
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the unit's own error: retrying cannot help
                        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                        fail(i, f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:500]}")
                    except ray.exceptions.RayError as exc:  # the worker or its node died
                        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                        if attempts[i] <= self.max_retries:
                            grid.log(f"[{labels[0]}] its worker died ({reason}); retrying "
                                     f"({attempts[i]} of {self.max_retries} retries)")
                            submit(i)
                        else:
                            fail(i, f"its worker died in each of {attempts[i]} attempt(s); last: {reason}")
                    else:
                        for label, state in result["states"].items():
                            state.pop("error", None)
                            grid.states[label] = state
                        grid.save()
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            if pending:  # the killed workers gone before their leftovers are removed
                ray.wait(list(pending), num_returns=len(pending), timeout=10)
            stopped = [u.label for i in set(pending.values()) for u in jobs[i]]
            for label in stopped:  # what a cancelled evaluation left (its worker is killed: nothing cleans up)
                remove_pending(unit_folder(grid.out, label))
            progress.set(stopped, "cancelled")
            raise
        finally:
            events.shutdown(force=True)  # the queue's actor (a process of its own) goes with the grid
        if failed:
            grid.save(summary=True)  # what did finish is summarised
            raise HybridvizError(f"{len(failed)} unit(s) failed: " + "; ".join(f"{label}: {error}" for label, error
                                                                              in failed.items())
                                 + ". Finished units are kept; rerun the same command to retry the others.")


# ------------------------------------------------------------------------------------------------ choosing


def make_executor(kind: str | None = "serial", address: str | None = None, cpus_per_unit: float | None = None,
                  gpus_per_unit: float | None = None, max_retries: int | None = None, num_cpus: int | None = None,
                  ddp_procs: int | None = None):
    """The executor a command line or a study asks for (`executor_options` records one)."""
    kind = kind or "serial"
    if ddp_procs is not None and (int(ddp_procs) != ddp_procs or ddp_procs < 1):
        raise HybridvizError(f"--ddp-procs-per-unit must be a whole number of processes, 1 or more; got {ddp_procs}.")
    if kind == "serial":
        return SerialExecutor(ddp_procs=int(ddp_procs or 1))
    if kind != "ray":
        raise HybridvizError(f"Executor {kind!r}: choose {' or '.join(EXECUTORS)}.")
    if cpus_per_unit is not None and cpus_per_unit <= 0:
        raise HybridvizError("--ray-cpus-per-unit must be above 0.")
    if (gpus_per_unit or 0) < 0 or (max_retries or 0) < 0:
        raise HybridvizError("--ray-gpus-per-unit and --max-retries cannot be negative.")
    import importlib.util

    if importlib.util.find_spec("ray") is None:  # said now, without importing it (seconds, and memory)
        raise HybridvizError(f"--executor ray needs the ray package, which is not installed: {RAY_INSTALL}")
    given = {"address": (address or "").strip() or None, "cpus_per_unit": cpus_per_unit,
             "gpus_per_unit": gpus_per_unit, "max_retries": max_retries, "num_cpus": num_cpus,
             "ddp_procs": int(ddp_procs) if ddp_procs is not None else None}
    return RayExecutor(**{k: v for k, v in given.items() if v is not None or k == "gpus_per_unit"})


def executor_options(executor) -> dict:
    """What a study records of its executor (study.json), for `make_executor(**options)` in its worker."""
    if isinstance(executor, RayExecutor):
        options = asdict(executor)
        options.pop("poll_s", None)
        return {"kind": "ray", **options}
    return {"kind": "serial", **({"ddp_procs": executor.ddp_procs} if getattr(executor, "ddp_procs", 1) > 1
                                 else {})}
