"""The fine-tune lab's queue: runs started in the background, one at a time, then evaluated automatically.

`submit()` validates a config, writes the run as queued and starts a detached worker process
(`python -m hybridviz lab-run <id>`); the worker waits for the single training slot (a file lock), trains,
then evaluates the model on the grid's evaluation slices into `cache/runs/<id>/evaluations/<task>/`. A page
only reads files (status.json, train_log.jsonl, evaluation.json), so a reload or a second browser sees the
same progress. At most MAX_WAITING runs wait; more requests are refused with a message, not queued silently.
"""

from __future__ import annotations

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
from hybridviz.training.runs import Run, file_lock, list_runs, process_end, reconcile
from hybridviz.training.trainer import TrainConfig, prepare_run, train

MAX_WAITING = 4
ROOT = Path(__file__).resolve().parents[2]


class QueueFull(HybridvizError):
    """More fine-tunes requested than the queue takes."""


class AlreadyQueued(QueueFull):
    """The same fine-tune is already queued or running: one worker per run."""


def config_from_run(run: Run) -> TrainConfig:
    return TrainConfig.from_dict(run.config())


def lab_info(run: Run) -> dict:
    path = run.dir / "lab.json"
    return json.loads(path.read_text()) if path.exists() else {}


def evaluation_state(run: Run) -> dict:
    path = run.dir / "evaluation.json"
    return json.loads(path.read_text()) if path.exists() else {}


def reconcile_evaluations(root: Path | None = None) -> list[str]:
    """Mark evaluations whose worker is gone (killed, crashed; a zombie is reaped) as failed, with the reason,
    instead of "Evaluating…" forever; returns the ids of the runs so marked. Evaluations written before the
    worker recorded its pid take the run's status pid (the same worker trained it)."""
    fixed = []
    for run in list_runs(root):
        record = evaluation_state(run)
        if record.get("state") != "evaluating":
            continue
        ended = process_end(record.get("pid") or run.status().get("pid"))
        if ended is None:
            continue
        write_json_atomic(run.dir / "evaluation.json", {
            **record, "state": "failed", "error": f"the evaluation worker ended while evaluating {record.get('task')} "
                                                  f"({ended}); start the run again to evaluate it"})
        fixed.append(run.id)
    return fixed


def measured_times(root: Path | None = None, model: str | None = None, last: int = 5) -> dict:
    """Seconds per training step and per benchmark evaluation measured on this machine: the median over the last
    `last` lab runs (of `model` where given) that have them, from their train logs and evaluation records.
    {"step_s": float | None, "eval_s": {task: float}, "runs": n}."""
    import statistics

    runs = [r for r in list_runs(root) if (r.dir / "lab.json").exists()
            and (model is None or r.config().get("model") == model)]
    runs.sort(key=lambda r: lab_info(r).get("submitted", 0), reverse=True)
    steps, evals, used = [], {}, 0
    for run in runs[:last]:
        log = run.train_log()
        counted = False
        if len(log) >= 2 and log[-1]["step"] > log[0]["step"]:  # the first step carries the model's load
            steps.append((log[-1]["seconds"] - log[0]["seconds"]) / (log[-1]["step"] - log[0]["step"]))
            counted = True
        for task, seconds in evaluation_state(run).get("timings", {}).items():
            evals.setdefault(task, []).append(seconds)
            counted = True
        used += counted
    return {"step_s": statistics.median(steps) if steps else None,
            "eval_s": {t: statistics.median(v) for t, v in evals.items()}, "runs": used}


def evaluation_eta(record: dict, measured: dict, now: float | None = None) -> float | None:
    """Seconds left of a run's whole evaluation: the current benchmark's rest (its measured time less the time
    spent, or its encoding rate) plus the measured time of each benchmark still to come; None when a benchmark
    has no measurement yet."""
    now = now or time.time()
    eval_s = measured.get("eval_s", {})
    if record.get("phase") == "sample":  # the samples first: every benchmark's full evaluation is still to come
        tasks = record.get("tasks", [])
        return sum(eval_s[t] for t in tasks) if tasks and all(t in eval_s for t in tasks) else None
    current, done = record.get("task"), record.get("done", [])
    todo = [t for t in record.get("tasks", []) if t not in done and t != current]
    left = None
    if record.get("to_encode") and record.get("encoded"):
        share = record["encoded"] / record["to_encode"]
        spent = now - record.get("stage_started", now)
        left = spent / share * (1 - share) if share > 0 else None
    if current in eval_s:
        left = max(left or 0.0, eval_s[current] - (now - record.get("started", now)))
    if left is None or any(t not in eval_s for t in todo):
        return None
    return left + sum(eval_s[t] for t in todo)


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
    samples = evaluate_samples(run, config, specs)
    if samples is None:
        return 1
    done, timings = [], {}
    for spec in specs:
        record = {"state": "evaluating", "task": spec["task"], "done": done, "total": len(specs),
                  "tasks": [s["task"] for s in specs], "started": time.time(), "pid": os.getpid(),
                  "timings": timings, "samples": samples, "phase": "full"}
        write_json_atomic(run.dir / "evaluation.json", record)

        def progress(stage: str, encoded: int, total: int, record=record) -> None:
            write_json_atomic(run.dir / "evaluation.json", {**record, "stage": stage, "encoded": encoded,
                                                            "to_encode": total, "stage_started":
                                                            record.setdefault(stage, time.time())})
        try:
            evaluate(str(run.model_dir), spec["task"], languages=spec.get("languages"), limit=spec.get("limit"),
                     out_dir=run.dir / "evaluations" / task_dir(spec["task"]),
                     precision=evaluation_precision(config.model), on_progress=progress)
        except Exception as exc:
            write_json_atomic(run.dir / "evaluation.json", {"state": "failed", "task": spec["task"], "done": done,
                                                            "error": f"{type(exc).__name__}: {exc}",
                                                            "timings": timings, "samples": samples})
            return 1
        timings[spec["task"]] = round(time.time() - record["started"], 1)
        done.append(spec["task"])
    write_json_atomic(run.dir / "evaluation.json", {"state": "done", "done": done, "total": len(specs),
                                                    "timings": timings, "samples": samples})
    return 0


SAMPLE_QUESTIONS = 100  # a benchmark's seeded sample, evaluated first (first figures within minutes)
SAMPLE_SEED = 0
HEADLINE = (("mono", "mAP"), ("cross", "mAP"), ("multi", "mAP"), ("mono", "nDCG@10"))


def evaluate_samples(run: Run, config: TrainConfig, specs: list[dict]) -> dict | None:
    """Before the full evaluation: each benchmark on a seeded sample of SAMPLE_QUESTIONS questions (XQuAD-R and
    MLQA-R: whole paragraphs, their questions against their sentences; MKQA: whole examples; custom sets keep
    their whole pool), into <run>/samples/<task>/ (never
    listed as results: labelled as a sample on the lab page only). Returns {task: {"questions", "seed",
    "seconds", "<setting> <metric>": value}}; None when the worker should stop (the sample failed: said in
    evaluation.json)."""
    from hybridviz.encoders.policy import evaluation_precision
    from hybridviz.evaluate import evaluate
    from hybridviz.results.store import read_metrics
    from hybridviz.tasks import task_dir

    samples: dict = {}
    todo = [s for s in specs if s.get("limit") is None or s["limit"] > SAMPLE_QUESTIONS]
    for spec in todo:
        record = {"state": "evaluating", "phase": "sample", "task": spec["task"], "done": [], "total": len(specs),
                  "tasks": [s["task"] for s in specs], "started": time.time(), "pid": os.getpid(),
                  "samples": samples}
        write_json_atomic(run.dir / "evaluation.json", record)
        folder = run.dir / "samples" / task_dir(spec["task"])
        try:
            evaluate(str(run.model_dir), spec["task"], languages=spec.get("languages"), limit=SAMPLE_QUESTIONS,
                     seed=SAMPLE_SEED, out_dir=folder, precision=evaluation_precision(config.model),
                     sample_pool=True)
            metrics = read_metrics(folder)
        except Exception as exc:
            write_json_atomic(run.dir / "evaluation.json", {**record, "state": "failed",
                                                            "error": f"sample of {spec['task']}: "
                                                                     f"{type(exc).__name__}: {exc}"})
            return None
        figures = {"questions": SAMPLE_QUESTIONS, "seed": SAMPLE_SEED,
                   "seconds": round(time.time() - record["started"], 1)}
        for setting, metric in HEADLINE:
            value = metrics.get("settings", {}).get(setting, {}).get("macro", {}).get(metric)
            if value is not None:
                figures[f"{setting} {metric}"] = value
        samples[spec["task"]] = figures
    return samples


def stop_process_group(pid, wait_s: float = 5.0) -> None:
    """SIGTERM to a worker's process group (a worker leads its own session), SIGKILL after `wait_s`; reaped when
    it is this process's child."""
    try:
        pid = int(pid)
        os.killpg(pid, signal.SIGTERM)
    except (OSError, ValueError, TypeError):
        return
    deadline = time.time() + wait_s
    while time.time() < deadline and process_end(pid) is None:
        time.sleep(0.1)
    if process_end(pid) is None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        time.sleep(0.2)
        process_end(pid)  # reaps it where it is our child


def cancel(run: Run) -> str:
    """Cancel a queued run (its waiting worker is stopped), a running one (it stops at the next step) or one
    being evaluated (its worker is stopped: finished benchmarks stay, the current one is dropped whole)."""
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
    record = evaluation_state(run)
    if record.get("state") == "evaluating":
        stop_process_group(record.get("pid") or run.status().get("pid"))
        write_json_atomic(run.dir / "evaluation.json", {**record, "state": "cancelled",
                                                        "error": f"cancelled while evaluating {record.get('task')}"})
        return f"evaluation cancelled ({len(record.get('done', []))} of {record.get('total')} benchmarks done)"
    return f"nothing to cancel: the run is {state}"
