"""One run trained by several processes (DDP under torchrun), launched and awaited by another process: a grid unit
that holds several GPUs (experiments/executors.py, `--ddp-procs-per-unit`).

    train_distributed(config, processes=2, root=..., benchmarks=..., slot="run")

writes the request (the exact `TrainConfig`, its run id, the runs root, the guard's evaluation sets and the slot)
to a JSON file and runs `python -m torch.distributed.run --standalone --nproc_per_node=<n> -m
hybridviz.training.distributed <request.json>`; every rank reads the request and calls `train()`, which is
torchrun-aware (`trainer._rank()`: rank 0 owns the registry, takes the slot and saves the model; the other ranks
only fit; gloo on the CPU, nccl on GPUs). The caller waits, then reads the run from the registry as after an
in-process `train()`. A rank that fails writes its error beside the request; the launcher raises
`DistributedTrainingError` with the first failing rank's error as its last line and the tail of torchrun's
stderr above it, and records that error as the run's (rank 0, torn down by torchrun or failing on the lost
connection, cannot know it). What the ranks printed is kept in the run's folder (torchrun.log).

No process outlives the unit: torchrun's agent gets SIGTERM when the process that launched it ends (a killed Ray
worker; on Linux, `die_with_parent`), and stops its ranks; each rank gets SIGTERM when the agent ends, even by
SIGKILL. An exception in the launcher while it waits (Ctrl-C, a cancelled task) stops torchrun the same way.

Semantics (docs/cluster.md, "Several GPUs in one unit"): accelerate deals each rank whole batches of the batch
sampler, one sampler batch per rank and step, all of one type (the samplers draw the type once per optimizer
step); the loss's in-batch negatives are the rank's own batch (no gathering across ranks), and the gradient is
averaged over the ranks: n processes train on n x batch_size pairs per step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from hybridviz.errors import HybridvizError
from hybridviz.fileio import write_json_atomic
from hybridviz.training.runs import Run, process_end
from hybridviz.training.trainer import TrainConfig, _rank, train

ROOT = Path(__file__).resolve().parents[2]  # on the ranks' PYTHONPATH: `-m hybridviz...` from any directory
FAULT_ENV = "HYBRIDVIZ_DDP_FAULT_RANK"  # tests: the rank named here raises in its second training step
TAIL_LINES = 25


class DistributedTrainingError(HybridvizError):
    """The torchrun processes of a distributed fine-tune failed; the message ends with the first rank's error."""


def write_request(path: Path, config: TrainConfig, root: Path | None, benchmarks: tuple[str, ...] | None,
                  slot: str) -> None:
    write_json_atomic(Path(path), {"config": asdict(config), "run_id": config.run_id(),
                                   "root": str(Path(root).resolve()) if root is not None else None,
                                   "benchmarks": list(benchmarks) if benchmarks is not None else None,
                                   "slot": slot})


def read_request(path: Path) -> dict:
    """The request with its config rebuilt; refused where the rebuilt config names another run (the ranks must
    train exactly the unit's run)."""
    request = json.loads(Path(path).read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(request["config"])
    if config.run_id() != request["run_id"]:
        raise DistributedTrainingError(f"{path}: the config read back names run {config.run_id()}, the request "
                                       f"{request['run_id']}.")
    return {**request, "config": config, "root": Path(request["root"]) if request["root"] else None,
            "benchmarks": tuple(request["benchmarks"]) if request["benchmarks"] is not None else None}


def error_file(request: Path, rank: int) -> Path:
    return Path(request).with_name(f"rank{rank}.error")


def die_with_parent(parent: int | None = None, signal_number: int = signal.SIGTERM) -> None:
    """Linux: this process gets `signal_number` when its parent ends (prctl PR_SET_PDEATHSIG; it survives exec).
    `parent`: the pid the parent had, to catch a parent that ended before the call. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal_number), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal_number)


# torchrun's agent, started so that it ends with the launcher (`die_with_parent`, inlined: importing hybridviz
# would import torch before the exec): argv[1] the launcher's pid, the rest torchrun's arguments
AGENT = """import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != int(sys.argv[1]):
        sys.exit("the launcher of this distributed training has ended")
os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", *sys.argv[2:]])
"""


def main(argv: list[str] | None = None) -> int:
    """One rank: train the request's run (every rank calls `train`; the trainer divides the work)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    die_with_parent()  # the agent killed outright (SIGKILL) cannot stop its ranks itself
    path = Path((argv if argv is not None else sys.argv[1:])[0])

    @record  # torchrun's failure summary then carries the failing rank's traceback
    def rank_main() -> None:
        try:
            request = read_request(path)
            if os.environ.get(FAULT_ENV) not in (None, "") and int(os.environ[FAULT_ENV]) == _rank():
                _inject_fault()
            run = train(request["config"], root=request["root"], benchmarks=request["benchmarks"],
                        slot=request["slot"])
            if _rank() == 0:
                print(f"run {run.id}: {run.status().get('state')}", flush=True)
        except BaseException as exc:
            error_file(path, _rank()).write_text(f"{type(exc).__name__}: {exc}", encoding="utf-8")
            raise

    rank_main()
    return 0


def _inject_fault() -> None:
    """This rank raises in its second training step, once the others have started the run and wait for it in
    the step's gradient exchange (tests/test_ddp_unit.py: a rank that fails mid-training)."""
    from transformers import Trainer

    step = Trainer.training_step

    def failing_step(self, *args, **kwargs):
        if self.state.global_step >= 1:
            raise RuntimeError(f"injected fault on rank {_rank()} at step {self.state.global_step + 1} "
                               f"({FAULT_ENV})")
        return step(self, *args, **kwargs)

    Trainer.training_step = failing_step


def torchrun_command(request: Path, processes: int) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc_per_node=<n> -m hybridviz.training.distributed
    <request>`, through `AGENT` (which ties the agent's life to this process's)."""
    return [sys.executable, "-c", AGENT, str(os.getpid()), "--standalone", f"--nproc_per_node={processes}",
            "-m", "hybridviz.training.distributed", str(request)]


def train_distributed(config: TrainConfig, processes: int, root: Path | None = None,
                      benchmarks: tuple[str, ...] | None = None, slot: str = "registry",
                      threads: int | None = None) -> Run:
    """Train (or resume) the run of `config` with `processes` DDP processes under torchrun, and wait for them;
    returns the Run, as `train` does (a finished run is returned untouched, by rank 0). `threads`: CPU threads per
    process (OMP_NUM_THREADS; default: this process's torch threads shared out, at least 1). Raises
    `DistributedTrainingError` when torchrun fails: the tail of its stderr, then the first failing rank's error."""
    if int(processes) < 2:
        raise ValueError(f"train_distributed needs at least 2 processes, got {processes}")
    config.validate()  # a setting that makes no sense is refused here, before any process starts
    run = Run(config.run_id(), root)
    if threads is None:
        import torch

        threads = max(1, torch.get_num_threads() // int(processes))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # torchrun sets its own
    with tempfile.TemporaryDirectory(prefix="hybridviz-ddp-") as tmp:
        request = Path(tmp) / "request.json"
        write_request(request, config, root, benchmarks, slot)
        stdout, stderr = Path(tmp) / "stdout.log", Path(tmp) / "stderr.log"
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            agent = subprocess.Popen(torchrun_command(request, processes), stdout=out, stderr=err, env=env,
                                     stdin=subprocess.DEVNULL)
            try:
                code = agent.wait()
            except BaseException:  # stopped while it trains: the agent stops its ranks (SIGTERM), then goes
                agent.terminate()
                try:
                    agent.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
                raise
        if run.dir.is_dir():  # what the ranks printed, kept with the run
            (run.dir / "torchrun.log").write_bytes(stdout.read_bytes() + stderr.read_bytes())
        if code == 0:
            return run
        # the first error written is the cause; a rank torn down after it may report a broken connection
        errors = [(int(p.stem[4:]), p.read_text(encoding="utf-8", errors="replace").strip())
                  for p in sorted(Path(tmp).glob("rank*.error"), key=lambda p: p.stat().st_mtime_ns)]
        tail = stderr.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-TAIL_LINES:]
    cause = (f"rank {errors[0][0]}: {' '.join(errors[0][1].split())[:500] or 'no message'}" if errors
             else f"torchrun exited with status {code} (no rank reported an error)")
    status = run.status()  # rank 0 torn down before it could say so, or failed on the lost connection: the cause
    if status.get("state") in ("queued", "running", "failed") and process_end(status.get("pid")) is not None:
        run.set_status("failed", error=f"distributed training failed: {cause}")
    raise DistributedTrainingError(
        f"Distributed training of {run.id} ({processes} processes, torchrun exit status {code}) failed. The tail of "
        f"torchrun's stderr:\n" + "\n".join("  " + line for line in tail) + f"\n{cause}")


if __name__ == "__main__":
    sys.exit(main())
