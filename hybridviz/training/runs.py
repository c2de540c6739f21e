"""The run registry: every fine-tune lives in `cache/runs/<run_id>/`.

    config.json      everything needed to repeat the run (plus data checksums and the code commit)
    status.json      queued / running / done / failed / cancelled, progress, ETA — written atomically
    train_log.jsonl  one line per logged step: step, loss, lr, seconds
    checkpoints/     the trainer's last checkpoint (resume from it)
    model/           the final sentence-transformers folder
    cancel           created by anyone who wants the run to stop (another process, the dashboard)

A run whose status says "running" but whose process is gone (killed) is marked failed by `reconcile()`, which
every new start calls. One fine-tune trains at a time on this CPU: `training_slot()` is an exclusive file lock (a
scheduler that places runs on declared cores, the grid's Ray executor, takes each run's own lock instead).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from hybridviz.data import paths
from hybridviz.fileio import read_jsonl, write_json_atomic

STATES = ("queued", "running", "done", "failed", "cancelled")


class Run:
    def __init__(self, run_id: str, root: Path | None = None):
        self.id = run_id
        self.dir = Path(root or paths.RUNS_DIR) / run_id

    # ------------------------------------------------------------------ files
    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    def config(self) -> dict:
        return json.loads((self.dir / "config.json").read_text(encoding="utf-8"))

    def status(self) -> dict:
        try:
            return json.loads((self.dir / "status.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {"state": "unknown"}

    def set_status(self, state: str, **fields) -> dict:
        assert state in STATES, state
        status = {**self.status(), **fields, "state": state, "updated": time.time()}
        if state in ("queued", "running") and "error" not in fields:
            status.pop("error", None)  # a resumed run sheds the error of its failed attempt
        write_json_atomic(self.dir / "status.json", status)
        return status

    def log(self, record: dict) -> None:
        with open(self.dir / "train_log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def train_log(self) -> list[dict]:
        return read_jsonl(self.dir / "train_log.jsonl")  # a line cut by a kill is skipped, the rest kept

    def _checkpoints(self) -> list[Path]:
        return sorted(self.checkpoints_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))

    @staticmethod
    def _complete(checkpoint: Path) -> bool:
        # the HF trainer writes trainer_state.json after the weights and optimizer: a kill mid-save leaves none
        try:
            json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
            return True
        except (OSError, json.JSONDecodeError):
            return False

    def last_checkpoint(self) -> Path | None:
        """The newest *complete* checkpoint (a run killed while saving leaves a partial one behind)."""
        complete = [c for c in self._checkpoints() if self._complete(c)]
        return complete[-1] if complete else None

    def discard_incomplete_checkpoints(self) -> list[Path]:
        import shutil

        partial = [c for c in self._checkpoints() if not self._complete(c)]
        for c in partial:
            shutil.rmtree(c, ignore_errors=True)
        return partial

    # ------------------------------------------------------------------ cancel
    def request_cancel(self) -> None:
        (self.dir / "cancel").touch()

    def cancel_requested(self) -> bool:
        return (self.dir / "cancel").exists()


def process_end(pid: int | None) -> str | None:
    """None while process `pid` runs; else how it ended, in words. A child of this process that has ended (a
    zombie until reaped: the dashboard starts the workers) is reaped here, and its exit status named; any other
    process is read from /proc/<pid>/stat, where state Z (zombie) or X counts as ended."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return "no process recorded"
    if pid <= 0:
        return "no process recorded"
    try:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            if os.WIFSIGNALED(code):
                return f"process {pid} was killed by signal {os.WTERMSIG(code)}"
            return f"process {pid} exited with status {os.WEXITSTATUS(code)}"
    except ChildProcessError:  # not our child: another server, or this very process
        pass
    except OSError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return f"process {pid} ended (a zombie its parent has not reaped)"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
        return None
    except ProcessLookupError:
        return f"process {pid} is gone"
    except OSError:
        return None  # exists, owned by someone else


def _alive(pid: int | None) -> bool:
    return bool(pid) and process_end(pid) is None


def list_runs(root: Path | None = None) -> list[Run]:
    root = Path(root or paths.RUNS_DIR)
    return [Run(p.name, root) for p in sorted(root.iterdir()) if (p / "config.json").is_file()] \
        if root.is_dir() else []


def reconcile(root: Path | None = None) -> list[str]:
    """Mark runs left "running" or "queued" by a process that no longer exists as failed; return their ids."""
    fixed = []
    for run in list_runs(root):
        st = run.status()
        ended = process_end(st.get("pid")) if st.get("state") in ("running", "queued") else None
        if ended is not None:
            run.set_status("failed", error=f"the training process ended without finishing ({ended}); "
                                           "resume it to continue from its last checkpoint")
            fixed.append(run.id)
    return fixed


@contextmanager
def file_lock(path: Path, wait: bool = True):
    """An exclusive advisory lock (fcntl) on `path`, between processes and threads alike; with wait=False
    raise BlockingIOError when another holder has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def training_slot(root: Path | None = None, wait: bool = True, run_id: str | None = None):
    """Exclusive lock: one fine-tune at a time. With wait=False raise BlockingIOError when taken. With `run_id`
    the lock is that run's own (two processes never train one run), and runs train side by side: where a
    scheduler (the grid's Ray executor, experiments/executors.py) has placed them on the cores it declared."""
    lock = Path(root or paths.RUNS_DIR) / (f"{run_id}/.train.lock" if run_id else ".train.lock")
    with file_lock(lock, wait):
        yield
