"""Studies: the whole sampler grid (experiments/grid.py) run from the dashboard as one background job.

    cache/studies/<name>/              a result bundle like any other (manifest.json, summary.json, models/ ...)
        study.json                     the request: the GridSpec, its units as planned (labels in the grid's
                                       order, with their kind, sampler, seed, alpha, method), who asked when
                                       (written once, at submit)
        status.json                    queued / running / done / failed / cancelled, the worker's pid, the unit
                                       it works on, the error (written by the worker; by the page only once the
                                       worker is dead)
        study.log                      the grid's log lines
        progress.json                  each unit's state (queued, running on <host>, done, failed), written by the
                                       grid's driver (experiments/executors.py)

`submit()` validates the request (model, training data, evaluation sets, training settings) before anything is
written, then starts a detached worker (`python -m hybridviz study-run <name>`) that calls `run_grid` on the
spec; the grid is resumable by design, so `resume()` after a crash, a cancel or a server restart simply runs it
again. The study's units run one after another in the worker (the serial executor), or as tasks of a Ray cluster
(a local one, or one at an address: `executor` in study.json). One study runs at a time on this machine: a second
submit while one is queued or running is refused with a message naming it (not queued). Fine-tunes share the
lab's training slot (one at a time) and run registry.

A study's bundle enters the dashboard's bundle selector as soon as each of its samplers has two finished runs
(`visible`); until the study is done its verdict is *partial* (`partial`). The readers the pages call
(`study_bundles`, `partial`, `progress`) read the study's files only: its planned units come from study.json, so
a page that shows a study imports neither the grid nor the training stack (torch) with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from hybridviz.data import paths
from hybridviz.errors import HybridvizError
from hybridviz.fileio import write_json_atomic
from hybridviz.results.format import MANIFEST
from hybridviz.training.runs import file_lock, process_end

ROOT = Path(__file__).resolve().parents[2]
STUDY, STATUS, LOG, PIDFILE = "study.json", "status.json", "study.log", "worker.pid"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ACTIVE = ("queued", "running")
MIN_RUNS = 2  # finished runs per sampler before a study's bundle is listed (a run-level test needs two)


class StudyError(HybridvizError):
    """A study request that cannot run as asked (bad name, model, data, evaluation set or settings)."""


class StudyBusy(StudyError):
    """Another study is queued or running: one study at a time."""


def studies_root(root: Path | None = None) -> Path:
    return Path(root or paths.STUDIES_DIR)


def study_dir(name: str, root: Path | None = None) -> Path:
    return studies_root(root) / name


# ------------------------------------------------------------------------------------------------- the request


def check_name(name: str, root: Path | None = None, new: bool = True) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise StudyError(f"Study name {name!r}: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or "
                         "digit (it becomes the folder cache/studies/<name>).")
    if new and (study_dir(name, root) / STUDY).exists():
        raise StudyError(f"A study named {name!r} exists already ({study_dir(name, root)}); choose another name, "
                         "or resume it below.")
    return name


def check_model(spec: str) -> str:
    """`spec` if it names a model this machine can load (the locators' kinds), else one clear error; nothing is
    loaded. hf:<name> needs the local cache or huggingface.co."""
    from hybridviz.encoders.locators import _hub_reachable, locate, unknown_model_message

    spec = (spec or "").strip()
    if "+" in spec:
        raise StudyError(f"Model {spec!r}: a study fine-tunes a plain model, not one with a training-free method.")
    loc = locate(spec) if spec else None
    if loc is None or loc.load is None:
        raise StudyError(unknown_model_message(spec))
    if spec.startswith("run:"):
        from hybridviz.training.runs import Run

        if not (Run(spec[4:]).model_dir / "modules.json").is_file():
            raise StudyError(f"Model {spec!r}: no finished run {spec[4:]!r} in {paths.RUNS_DIR}.")
    elif spec.startswith("hf:"):
        from huggingface_hub import try_to_load_from_cache

        if not _hub_reachable() and try_to_load_from_cache(spec[3:], "modules.json") is None:
            raise StudyError(f"Model {spec!r} is not in the local Hugging Face cache and huggingface.co cannot be "
                             "reached (offline): choose me5-small, a run or a local folder.")
    elif loc.kind == "<folder>" and not (Path(spec) / "modules.json").is_file():
        raise StudyError(f"Model folder {spec!r} has no modules.json: not a sentence-transformers model folder.")
    elif spec.startswith("ref:"):
        raise StudyError(f"Model {spec!r}: shipped compact models evaluate only; fine-tune from me5-small, a run or a "
                         "folder.")
    return spec


def build_spec(model: str, tasks: list[str], samplers: list[str], seeds: list[int], alphas: list[float],
               steps: int, train_data: str = "mlqa-r", train_languages: list[str] | None = None,
               limit: int | None = None, batch_size: int | None = None, learning_rate: float | None = None,
               warmup_steps: int | None = None, early_stopping: bool = False, eval_steps: int = 100,
               patience: int = 5, precision: str | None = None):
    """The GridSpec of a study, validated whole (one error naming the first problem): the model, every evaluation
    set (`beir:<folder>` checked line by line), each sampler's training settings against the data. No debiasing
    units: a study compares samplers. `alphas`: the first is the hybrid runs' α, the others an α sweep on the
    first seed. `limit`: a seeded sample of that many questions per benchmark (None: whole)."""
    from hybridviz.encoders.policy import default_precision
    from hybridviz.experiments.grid import GridSpec
    from hybridviz.tasks import DEFAULT_EVALUATIONS, check_task
    from hybridviz.training.samplers import SAMPLERS

    model = check_model(model)
    if not tasks:
        raise StudyError("Choose at least one evaluation set.")
    evaluations = []
    defaults = {e["task"]: e for e in DEFAULT_EVALUATIONS}
    for task in dict.fromkeys(t.strip() for t in tasks if t.strip()):
        check_task(task)  # a bad custom folder: one error naming the file and line
        ev = dict(defaults.get(task, {"task": task, "languages": None, "limit": None}))
        if limit:
            ev["limit"] = int(limit) if ev.get("limit") is None else min(int(limit), ev["limit"])
        evaluations.append(ev)
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown or not samplers:
        raise StudyError(f"Samplers {unknown or samplers}: choose among {', '.join(SAMPLERS)}.")
    if len(set(seeds)) < 2:
        raise StudyError("Choose at least two seeds: a sampler's verdict is a test over its runs (two or more).")
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise StudyError(f"α values {alphas}: each between 0 and 1, at least one (the hybrid runs').")
    if int(steps) < 1:
        raise StudyError("The budget needs at least one step.")
    precision = precision or default_precision(model)
    # the α sweep: the hybrid runs' α (when hybrid is compared) and every further value, on the first seed
    sweep = ([float(alphas[0])] if "hybrid" in samplers else []) + [float(a) for a in alphas[1:]]
    spec = GridSpec(model=model, samplers=list(samplers), seeds=sorted(set(int(s) for s in seeds)),
                    alpha=float(alphas[0]), alphas=sorted(set(sweep)), alpha_seed=min(seeds),
                    alpha_tasks=[e["task"] for e in evaluations], steps=int(steps), precision=precision,
                    train_precision=precision, train_data=train_data, train_languages=train_languages or None,
                    evaluations=evaluations, methods=[], sampler_method=None,
                    **{k: v for k, v in (("batch_size", batch_size), ("learning_rate", learning_rate),
                                         ("warmup_steps", warmup_steps)) if v is not None})
    if early_stopping:  # as `experiment --early-stopping`: steps become the maximum budget
        from hybridviz.experiments.curves import HOLDOUT, WARMUP_STEPS, converged_extra

        spec.holdout = HOLDOUT
        spec.train_extra = converged_extra(eval_steps, patience, [])
        if warmup_steps is None:
            spec.warmup_steps = min(WARMUP_STEPS, spec.steps)
    spec.warmup_steps = min(spec.warmup_steps, spec.steps)
    from hybridviz.experiments.grid import check_training_data, pin_training_file
    from hybridviz.training.trainer import load_pairs

    spec = pin_training_file(spec)  # a JSONL of pairs: validated line by line, size-checked, its sha256 pinned
    for sampler in spec.samplers:  # against the data: batch larger than it, too few languages for x-y, ...
        config = spec.train_config(sampler, spec.seeds[0])
        config.validate()
        pairs = load_pairs(config)
        config.validate(len(pairs), pairs.languages)
    check_training_data(spec, log=lambda message: None)  # the grid's zero-shot guard against the chosen sets
    return spec


# ------------------------------------------------------------------------------------------------- the state


def read_study(name: str, root: Path | None = None) -> dict:
    path = study_dir(name, root) / STUDY
    return json.loads(path.read_text()) if path.exists() else {}


def planned_units(spec) -> list[dict]:
    """The units the grid plans for `spec` (a GridSpec), in its order, as study.json records them: {"label",
    "kind" (base / fine-tune), "sampler", "seed", "alpha", "method"} each."""
    from hybridviz.experiments.grid import plan

    return [{"label": u.label, "kind": "base" if u.config is None else "fine-tune", "sampler": u.sampler,
             "seed": u.seed, "alpha": u.alpha, "method": u.method} for u in plan(spec)]


def request_record(name: str, spec, runs_root: Path | None = None, executor=None) -> dict:
    """study.json: the request as submitted, with its planned units (`planned_units`) so that the pages read a
    study's progress without planning the grid anew (which imports the training stack)."""
    from hybridviz.experiments.executors import executor_options

    return {"name": name, "spec": asdict(spec), "units": planned_units(spec), "submitted": time.time(),
            "runs_root": str(runs_root) if runs_root else None, "executor": executor_options(executor)}


def study_units(request: dict) -> list[dict]:
    """A study's planned units (`planned_units`) as its study.json records them. A study.json written before the
    units were recorded there has none: they are planned anew from its spec, the one path on which reading a
    study imports the grid (and torch with it)."""
    if "units" in request:
        return request["units"]
    from hybridviz.experiments.grid import GridSpec

    return planned_units(GridSpec(**request["spec"]))


def read_status(name: str, root: Path | None = None) -> dict:
    try:
        return json.loads((study_dir(name, root) / STATUS).read_text())
    except (OSError, ValueError):
        return {"state": "unknown"}


def set_status(name: str, root: Path | None, state: str, **fields) -> dict:
    status = {**read_status(name, root), **fields, "state": state, "updated": time.time()}
    if state in ACTIVE and "error" not in fields:
        status.pop("error", None)
    write_json_atomic(study_dir(name, root) / STATUS, status)
    return status


def list_studies(root: Path | None = None) -> list[str]:
    """Every study's name, newest request first."""
    base = studies_root(root)
    names = [p.parent.name for p in base.glob(f"*/{STUDY}")] if base.is_dir() else []
    return sorted(names, key=lambda n: read_study(n, root).get("submitted", 0), reverse=True)


def reconcile(root: Path | None = None) -> list[str]:
    """Studies left queued or running by a worker that is gone (killed, crashed, the machine restarted; a zombie
    child is reaped) are marked failed with the reason; they can be resumed. Returns their names."""
    fixed = []
    for name in list_studies(root):
        status = read_status(name, root)
        if status.get("state") in ACTIVE:
            pid = worker_pid(name, root)
            if not pid and time.time() - status.get("updated", 0) < 60:
                continue  # being started: its pid is recorded in a moment
            ended = process_end(pid)
            if ended is not None:
                set_status(name, root, "failed", error=f"the study's worker ended without finishing ({ended}); "
                                                       "resume it: finished units are kept")
                fixed.append(name)
    return fixed


def active(root: Path | None = None) -> str | None:
    """The study now queued or running (its worker alive), if any."""
    reconcile(root)
    return next((n for n in list_studies(root) if read_status(n, root).get("state") in ACTIVE), None)


# ------------------------------------------------------------------------------------------------- the job


def submit(name: str, spec, root: Path | None = None, runs_root: Path | None = None, executor=None) -> Path:
    """Write the study's request and start its worker; returns the study's folder (its bundle). Refused while
    another study is queued or running (one at a time: StudyBusy, naming it). `executor`
    (experiments/executors.py): where the grid's units run, serial (None, the default) or a RayExecutor."""
    base = studies_root(root)
    with file_lock(base / ".submit.lock"):
        name = check_name(name, root)
        busy = active(root)
        if busy:
            raise StudyBusy(f"Study {busy!r} is {read_status(busy, root).get('state')}: one study runs at a time on "
                            "this machine. Wait for it, or cancel it below, then submit again (nothing was queued).")
        folder = study_dir(name, root)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / STUDY, request_record(name, spec, runs_root, executor))
        (folder / PIDFILE).unlink(missing_ok=True)
        set_status(name, root, "queued", pid=None)
        _started(name, root, start_worker(name, base))
    return folder


def _started(name: str, root: Path | None, pid: int) -> None:
    """Record the worker's pid beside its status (status.json is the worker's own once it runs: it records its
    pid there itself, so the launcher never writes over a state the worker has moved on)."""
    (study_dir(name, root) / PIDFILE).write_text(str(pid))


def worker_pid(name: str, root: Path | None = None) -> int | None:
    """The study's worker: as it recorded itself, else as its launcher did."""
    pid = read_status(name, root).get("pid")
    if pid:
        return int(pid)
    try:
        return int((study_dir(name, root) / PIDFILE).read_text())
    except (OSError, ValueError):
        return None


def start_worker(name: str, root: Path) -> int:
    """A detached `python -m hybridviz study-run <name>` (its own session: it outlives the page that started it,
    and Cancel stops its whole process group)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(study_dir(name, root) / LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "hybridviz", "study-run", name, "--root", str(root)],
                                cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=env)
    return proc.pid


def resume(name: str, root: Path | None = None) -> int:
    """Run a failed or cancelled study's grid again (finished units are kept: run_grid skips them)."""
    base = studies_root(root)
    with file_lock(base / ".submit.lock"):
        if not read_study(name, root):
            raise StudyError(f"No study named {name!r} in {base}.")
        busy = active(root)
        if busy:
            raise StudyBusy(f"Study {busy!r} is {read_status(busy, root).get('state')}: one study runs at a time; "
                            f"{name!r} can resume once it has finished or been cancelled.")
        if read_status(name, root).get("state") == "done":
            raise StudyError(f"Study {name!r} is complete: nothing to resume.")
        (study_dir(name, root) / PIDFILE).unlink(missing_ok=True)
        set_status(name, root, "queued", pid=None, resumed=time.time(), current=None, current_unit=None)
        pid = start_worker(name, base)
        _started(name, root, pid)
    return pid


def cancel(name: str, root: Path | None = None) -> str:
    """Stop a study's worker (its whole process group: SIGTERM, then SIGKILL) and mark it cancelled. Every
    evaluation the grid finished stays (each is written whole); the unit under way is dropped and redone on
    resume (its fine-tune continues from its last checkpoint)."""
    from hybridviz.experiments.lab import stop_process_group

    status = read_status(name, root)
    if status.get("state") not in ACTIVE:
        return f"nothing to cancel: study {name!r} is {status.get('state')}"
    stop_process_group(worker_pid(name, root))
    set_status(name, root, "cancelled", error=f"cancelled while {status.get('current') or 'starting'}")
    return f"study {name!r} cancelled; resume it to continue where it stopped"


def run_worker(name: str, root: Path | None = None) -> int:
    """The background worker: run_grid on the study's spec into its folder. Returns a process exit code."""
    from hybridviz.experiments.executors import make_executor
    from hybridviz.experiments.grid import GridSpec, run_grid

    folder = study_dir(name, root)
    try:
        with file_lock(folder / ".worker.lock", wait=False):
            request = read_study(name, root)
            spec = GridSpec(**request["spec"])
            runs_root = Path(request["runs_root"]) if request.get("runs_root") else None
            set_status(name, root, "running", pid=os.getpid(), started=time.time())

            def log(message: str) -> None:
                print(message, flush=True)
                found = re.match(r"\[([^\]]+)\]", message)
                status = read_status(name, root)
                fields = {"current": message}
                if found and found.group(1) != status.get("current_unit"):
                    fields.update(current_unit=found.group(1), unit_started=time.time())
                set_status(name, root, "running", **fields)

            try:
                executor = make_executor(**request.get("executor", {"kind": "serial"}))
                run_grid(folder, spec, log=log, runs_root=runs_root, executor=executor)
            except Exception as exc:
                set_status(name, root, "failed", error=f"{type(exc).__name__}: {exc}")
                print(f"study {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            set_status(name, root, "done", finished=time.time(), current=None, current_unit=None)
            return 0
    except BlockingIOError:
        print(f"another worker already runs study {name}; this one stops", file=sys.stderr)
        return 0


# ------------------------------------------------------------------------------------------------- reading


def _manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def progress(name: str, root: Path | None = None, now: float | None = None) -> dict:
    """The study's units in the grid's order with their state and wall time, the counts, and an ETA: each unit
    left takes the mean wall time of the finished units of its kind (the base; a fine-tune), less the time the
    unit under way has run. {"units": [...], "done", "total", "eta_s" (None before a unit of each kind is
    measured), "status", "executor"}. Where the grid recorded its progress (progress.json: every unit's state
    under either executor), a unit under way reads "running on <host>" (training / evaluating for the unit the
    log names), with its host, attempt and error."""
    from hybridviz.results.store import progress_rows

    now = now or time.time()
    request = read_study(name, root)
    status = read_status(name, root)
    states = _manifest(study_dir(name, root)).get("units", {})
    live = progress_rows(study_dir(name, root)) if status.get("state") in ACTIVE else {}
    rows = []
    for unit in study_units(request):
        label = unit["label"]
        state = states.get(label, {})
        walls = state.get("wall_s", {})
        shown = state.get("state") or "pending"
        entry = live.get(label, {})
        current = status.get("state") == "running" and status.get("current_unit") == label
        verb = ("training" if "training" in (status.get("current") or "") else "evaluating") if current else None
        if shown != "done" and entry.get("state") == "running":
            shown = f"{verb or 'running'} on {entry.get('host', '?')}"
        elif shown != "done" and entry.get("state") in ("queued", "failed"):
            shown = entry["state"]
        elif shown != "done" and current:
            shown = verb
        rows.append({"unit": label, "kind": unit["kind"], "sampler": unit["sampler"], "seed": unit["seed"],
                     "alpha": unit["alpha"], "state": shown,
                     "where": entry.get("where", "") if entry.get("state") == "running" else
                     ", ".join(f"{r.get('host')} ({r.get('device')})" for r in state.get("ran_on", [])[-1:]),
                     "attempt": entry.get("attempt", 1), "error": entry.get("error") or state.get("error") or "",
                     "wall_s": round(sum(walls.values()), 1), "steps": {k: v for k, v in walls.items()}})
    done = [r for r in rows if r["state"] == "done"]
    mean = {}
    for kind in ("base", "fine-tune"):
        walls = [r["wall_s"] for r in done if r["kind"] == kind]
        if walls:
            mean[kind] = sum(walls) / len(walls)
    eta = None
    left = [r for r in rows if r["state"] != "done"]
    if status.get("state") in ACTIVE and all(r["kind"] in mean for r in left):
        eta = 0.0
        for r in left:
            spent = (now - status.get("unit_started", now)) if r["unit"] == status.get("current_unit") else 0.0
            eta += max(mean[r["kind"]] - spent, 0.0)
    return {"units": rows, "done": len(done), "total": len(rows), "eta_s": eta, "status": status,
            "spec": request["spec"], "executor": request.get("executor", {"kind": "serial"})}


def finished_runs(folder: Path) -> dict[str, int]:
    """Finished fine-tunes per sampler of the study (at the main α; the α sweep's extra points aside)."""
    manifest = _manifest(Path(folder))
    spec = manifest.get("spec", {})
    counts = {s: 0 for s in spec.get("samplers", [])}
    for unit in manifest.get("units", {}).values():
        sampler = unit.get("sampler")
        if unit.get("state") != "done" or unit.get("method") or sampler not in counts:
            continue
        if sampler == "hybrid" and unit.get("alpha") is not None and float(unit["alpha"]) != float(spec.get("alpha")):
            continue
        counts[sampler] += 1
    return counts


def visible(folder: Path) -> bool:
    """A study's bundle is listed once each of its samplers has MIN_RUNS finished runs and a summary."""
    counts = finished_runs(folder)
    return bool(counts) and min(counts.values()) >= MIN_RUNS and (Path(folder) / "summary.json").exists()


def study_bundles(root: Path | None = None) -> list[Path]:
    """The studies' bundles the dashboard lists (each sampler with two finished runs), oldest first."""
    return [study_dir(n, root) for n in reversed(list_studies(root)) if visible(study_dir(n, root))]


def partial(folder: Path) -> dict | None:
    """For a study's bundle that is not complete: {"done", "total", "state"} (its verdict is partial); None for a
    complete study or any other bundle."""
    folder = Path(folder)
    if not (folder / STUDY).exists():
        return None
    status = json.loads((folder / STATUS).read_text()) if (folder / STATUS).exists() else {}
    if status.get("state") == "done":
        return None
    units = study_units(json.loads((folder / STUDY).read_text()))
    states = _manifest(folder).get("units", {})
    done = sum(states.get(u["label"], {}).get("state") == "done" for u in units)
    return {"done": done, "total": len(units), "state": status.get("state", "unknown")}
