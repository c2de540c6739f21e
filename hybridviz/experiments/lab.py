"""The fine-tune lab's queue: runs started in the background, one at a time, then evaluated automatically.

`submit()` validates a config, writes the run as queued and starts a detached worker process
(`python -m hybridviz lab-run <id>`); the worker waits for the single training slot (a file lock), trains,
then evaluates the model on the grid's evaluation slices into `cache/runs/<id>/evaluations/<task>/`. A page
only reads files (status.json, train_log.jsonl, evaluation.json), so a reload or a second browser sees the
same progress. At most MAX_WAITING runs wait; more requests are refused with a message, not queued silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hybridviz.errors import HybridvizError
from hybridviz.fileio import write_json_atomic
from hybridviz.data import paths
from hybridviz.training.runs import Run, file_lock, list_runs, reconcile
from hybridviz.training.trainer import TrainConfig, prepare_run, train

MAX_WAITING = 4
ROOT = Path(__file__).resolve().parents[2]


class QueueFull(HybridvizError):
    """More fine-tunes requested than the queue takes."""


class AlreadyQueued(QueueFull):
    """The same fine-tune is already queued or running: one worker per run."""


def config_from_run(run: Run) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in run.config().items() if k in names})


def lab_info(run: Run) -> dict:
    path = run.dir / "lab.json"
    return json.loads(path.read_text()) if path.exists() else {}


def evaluation_state(run: Run) -> dict:
    path = run.dir / "evaluation.json"
    return json.loads(path.read_text()) if path.exists() else {}


def queue(root: Path | None = None) -> list[Run]:
    """Queued and running lab runs, oldest request first (position 1 trains now or next)."""
    runs = [r for r in list_runs(root) if r.status().get("state") in ("queued", "running")]
    return sorted(runs, key=lambda r: lab_info(r).get("submitted", r.status().get("updated", 0)))


def submit(config: TrainConfig, tasks: list[str] | None = None, root: Path | None = None,
           evaluations: list[dict] | None = None) -> Run:
    """Queue a fine-tune (validated first) and start its worker; returns the run."""
    from hybridviz.tasks import DEFAULT_EVALUATIONS

    config.validate()
    root_dir = Path(root or paths.RUNS_DIR)
    # check-and-enqueue under one lock: two submits of the same form (Enter, then a click) cannot both pass
    with file_lock(root_dir / ".submit.lock"):
        reconcile(root)
        waiting = queue(root)
        if config.run_id() in {r.id for r in waiting}:
            raise AlreadyQueued(f"This exact fine-tune ({config.run_id()}) is already queued or running.")
        if len(waiting) >= MAX_WAITING + 1:  # one training, MAX_WAITING waiting
            raise QueueFull(f"The queue is full: {len(waiting)} fine-tunes are queued or running on this machine "
                            f"(at most {MAX_WAITING} wait). Cancel one or wait for one to finish.")
        run = prepare_run(config, root)
        specs = [e for e in (evaluations or DEFAULT_EVALUATIONS) if tasks is None or e["task"] in tasks]
        write_json_atomic(run.dir / "lab.json", {"submitted": time.time(), "evaluations": specs})
        (run.dir / "evaluation.json").unlink(missing_ok=True)
        pid = start_worker(run, root_dir)
        if run.status().get("state") != "done":
            run.set_status("queued", pid=pid)
    return run


def start_worker(run: Run, root: Path) -> int:
    """A detached `python -m hybridviz lab-run <id>` (its own session: it outlives the page that started it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(run.dir / "lab.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "hybridviz", "lab-run", run.id, "--root", str(root)],
                                cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=env)
    return proc.pid


def run_worker(run_id: str, root: Path | None = None) -> int:
    """The background worker: train (waiting for the slot), then evaluate. Returns a process exit code."""
    run = Run(run_id, root)
    try:  # one worker per run, for its training and its evaluation alike
        with file_lock(run.dir / ".worker.lock", wait=False):
            return _work(run, root)
    except BlockingIOError:
        print(f"another worker already has run {run_id}; this one stops", file=sys.stderr)
        return 0


def _work(run: Run, root: Path | None) -> int:
    from hybridviz.encoders.policy import evaluation_precision
    from hybridviz.evaluate import evaluate
    from hybridviz.tasks import task_dir

    config = config_from_run(run)
    run = train(config, root=root)
    if run.status().get("state") != "done":
        return 1
    specs = lab_info(run).get("evaluations", [])
    done = []
    for spec in specs:
        record = {"state": "evaluating", "task": spec["task"], "done": done, "total": len(specs),
                  "started": time.time()}
        write_json_atomic(run.dir / "evaluation.json", record)

        def progress(stage: str, encoded: int, total: int, record=record) -> None:
            write_json_atomic(run.dir / "evaluation.json", {**record, "stage": stage, "encoded": encoded,
                                                            "to_encode": total, "stage_started":
                                                            record.setdefault(stage, time.time())})
        try:
            evaluate(str(run.model_dir), spec["task"], languages=spec.get("languages"), limit=spec.get("limit"),
                     out_dir=run.dir / "evaluations" / task_dir(spec["task"]), precision=evaluation_precision(config.model),
                     on_progress=progress)
        except Exception as exc:
            write_json_atomic(run.dir / "evaluation.json", {"state": "failed", "task": spec["task"], "done": done,
                                                            "error": f"{type(exc).__name__}: {exc}"})
            return 1
        done.append(spec["task"])
    write_json_atomic(run.dir / "evaluation.json", {"state": "done", "done": done, "total": len(specs)})
    return 0


def cancel(run: Run) -> str:
    """Cancel a queued run (its waiting worker is stopped) or a running one (it stops at the next step)."""
    state = run.status().get("state")
    if state == "queued":
        pid = run.status().get("pid")
        if pid:
            try:
                os.killpg(int(pid), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        run.set_status("cancelled", progress=0.0)
        return "cancelled before it started"
    if state == "running":
        run.request_cancel()
        return "stopping at the next step"
    return f"nothing to cancel: the run is {state}"
