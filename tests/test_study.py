"""Studies from the dashboard (experiments/study.py): a request validated before anything is written; a tiny study
(tiny model, 2 samplers x 2 seeds, 3 steps, a small custom BEIR set) driven through its background worker to a
bundle with a verdict, refused twice at once, cancelled, killed (-9) and resumed; the lab's dead-worker mends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hybridviz.errors import HybridvizError
from hybridviz.experiments import study

from conftest import assert_runs_without_heavy_imports

TINY = dict(model="tiny", samplers=["x-x-mono", "x-y"], seeds=[0, 1], alphas=[0.5], steps=3, batch_size=8,
            learning_rate=1e-3, warmup_steps=0, train_languages=["en", "de"], precision="fp32")


@pytest.fixture(scope="module")
def beir_folder(tmp_path_factory, data_root):
    """XQuAD-R en/de, 12 questions, written out in the BEIR layout: the study's own evaluation set."""
    from hybridviz.tasks import build_corpus, write_beir

    folder = tmp_path_factory.mktemp("beir") / "mini-xquad"
    write_beir(build_corpus("xquad-r", ["en", "de"], limit=12, seed=0), folder)
    return folder


def wait_for(predicate, timeout: float, what: str, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{log()}" if log else ""))


def test_a_bad_request_is_refused_before_anything_is_written(tmp_path, beir_folder, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corpus.jsonl").write_text('{"_id": "d1", "text": "x", "lang": "en"}\n')
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"id": "1", "lang": "en", "query": "q", "positive": "p"}\n{"id": "2", "lang": "en"\n')
    cases = [
        (dict(TINY, train_data=str(pairs)), [f"beir:{beir_folder}"], "pairs.jsonl, line 2: malformed JSON"),
        (dict(TINY, model="no-such-model"), [f"beir:{beir_folder}"], "Unknown model"),
        (dict(TINY, model=str(tmp_path)), [f"beir:{beir_folder}"], "no modules.json"),
        (dict(TINY, model="run:nope"), [f"beir:{beir_folder}"], "no finished run"),
        (dict(TINY), [f"beir:{bad}"], "queries.jsonl"),
        (dict(TINY), [], "at least one evaluation set"),
        (dict(TINY, seeds=[0]), [f"beir:{beir_folder}"], "at least two seeds"),
        (dict(TINY, alphas=[1.5]), [f"beir:{beir_folder}"], "between 0 and 1"),
        (dict(TINY, batch_size=100_000), [f"beir:{beir_folder}"], "larger than"),
        (dict(TINY, train_data=str(tmp_path / "missing.jsonl")), [f"beir:{beir_folder}"], "missing.jsonl"),
    ]
    from hybridviz.encoders import locators

    monkeypatch.setattr(locators, "_hub_reachable", lambda timeout=3.0: False)  # offline, as here at run time
    cases.append((dict(TINY, model="hf:intfloat/no-such-model-here"), [f"beir:{beir_folder}"],
                  "not in the local Hugging Face cache and huggingface.co cannot be reached"))
    for kwargs, tasks, message in cases:
        with pytest.raises(HybridvizError, match=message):
            study.build_spec(tasks=tasks, **kwargs)
    for name in ("", "a b", "../x", "-x"):
        with pytest.raises(study.StudyError, match="Study name"):
            study.check_name(name, tmp_path)
    assert not list(tmp_path.glob("*/study.json"))


def test_early_stopping_is_the_experiment_commands_converged_regime(beir_folder):
    from hybridviz.experiments.curves import HOLDOUT, converged_extra

    spec = study.build_spec(tasks=[f"beir:{beir_folder}"], early_stopping=True, eval_steps=2, patience=1,
                            **{**TINY, "warmup_steps": None})
    assert spec.holdout == HOLDOUT and spec.train_extra == converged_extra(2, 1, [])
    assert spec.methods == [] and spec.sampler_method is None


@pytest.mark.slow
def test_a_tiny_study_runs_in_the_background_to_a_verdict(tmp_path, beir_folder, monkeypatch):
    """Submit -> worker -> bundle -> summary with a verdict; a second submit is refused while it runs; cancel,
    kill -9 (the state becomes failed, with the reason) and resume each keep what was finished."""
    from hybridviz.experiments.bundle import load_bundle
    from hybridviz.experiments.verdict import verdicts
    from hybridviz.tasks import task_dir

    root, runs = tmp_path / "studies", tmp_path / "runs"
    task = f"beir:{beir_folder}"
    spec = study.build_spec(tasks=[task], **TINY)
    started = time.time()
    folder = study.submit("tiny", spec, root=root, runs_root=runs)
    log = lambda: (folder / "study.log").read_text()[-3000:]  # noqa: E731
    with pytest.raises(study.StudyBusy, match="one study runs at a time"):
        study.submit("other", spec, root=root, runs_root=runs)
    assert not (root / "other").exists()
    # cancel once the first fine-tune has been trained and evaluated: it is kept
    wait_for(lambda: (folder / "models" / "x-x-mono-s0" / task_dir(task) / "metrics.json").is_file(), 300,
             "the first fine-tune's evaluation", log)
    assert "cancelled" in study.cancel("tiny", root)
    assert study.read_status("tiny", root)["state"] == "cancelled" and study.active(root) is None
    kept = json.loads((folder / "manifest.json").read_text())["units"]
    assert kept["x-x-mono-s0"]["state"] == "done"
    # resume; then kill -9 the worker: the next look marks it failed, with the reason
    study.resume("tiny", root)
    wait_for(lambda: study.read_status("tiny", root).get("state") == "running"
             and study.read_status("tiny", root).get("current_unit") not in (None, "base", "x-x-mono-s0"), 300,
             "the resumed worker at a new unit", log)
    pid = study.read_status("tiny", root)["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert study.reconcile(root) == ["tiny"]
    status = study.read_status("tiny", root)
    assert status["state"] == "failed" and "killed by signal 9" in status["error"], status
    assert not os.path.exists(f"/proc/{pid}") or "Z" not in open(f"/proc/{pid}/stat").read().split(")")[1][:3]
    assert study.partial(folder) is not None
    # a restarted server: the state on disk says failed; Resume runs the grid again to the end
    study.resume("tiny", root)
    wait_for(lambda: study.read_status("tiny", root).get("state") in ("done", "failed"), 600, "the study's end",
             log)
    assert study.read_status("tiny", root)["state"] == "done", log()
    wall = time.time() - started
    progress = study.progress("tiny", root)
    assert progress["done"] == progress["total"] == 5 and progress["eta_s"] is None
    assert study.partial(folder) is None and study.visible(folder)
    assert study.study_bundles(root) == [folder]
    bundle = load_bundle(folder)
    assert bundle.tasks() == [task]
    lines = verdicts(bundle.summary, task, methods=["base", "x-x-mono", "x-y"])
    assert lines and all(v["text"] for v in lines)
    from hybridviz.experiments.robustness import robustness_rows

    rows = robustness_rows([bundle])  # the Robustness page's rows: the study is one set-up among the bundles
    assert rows and {r["bundle"] for r in rows} == {"study:tiny"} and {r["task"] for r in rows} == {task}
    print(f"tiny study wall time (with a cancel, a kill and two resumes): {wall:.0f} s")


def write_study(folder, spec, units: dict, status: dict, recorded: bool = True, progress: dict | None = None):
    """A study's folder as its worker leaves it part-way: study.json (as `submit` writes it, or, `recorded=False`,
    as a study submitted before the planned units were recorded there), status.json, the manifest's unit states,
    and progress.json where given."""
    from dataclasses import asdict

    from hybridviz.fileio import write_json_atomic

    record = study.request_record(folder.name, spec) if recorded else {"name": folder.name, "spec": asdict(spec),
                                                                       "submitted": 0}
    write_json_atomic(folder / "study.json", record)
    write_json_atomic(folder / "manifest.json", {"spec": asdict(spec), "units": units})
    write_json_atomic(folder / "status.json", status)
    if progress is not None:
        write_json_atomic(folder / "progress.json", progress)
    return folder


@pytest.mark.parametrize("recorded", [True, False], ids=["units-in-study.json", "older-study.json"])
def test_progress_eta_from_the_finished_units(tmp_path, recorded):
    """Each unit left takes the mean wall time of the finished units of its kind, less what the current one ran;
    the same from the units study.json records as from an older study.json, whose units are planned anew."""
    from hybridviz.experiments.grid import GridSpec, plan

    spec = GridSpec(model="tiny", samplers=["x-y", "hybrid"], seeds=[0, 1], alphas=[0.5], methods=[],
                    sampler_method=None, evaluations=[{"task": "xquad-r", "languages": None, "limit": 10}])
    folder = write_study(tmp_path / "s", spec, recorded=recorded, units={
        "base": {"state": "done", "wall_s": {"eval xquad-r": 10.0}},
        "x-y-s0": {"state": "done", "wall_s": {"train": 50.0, "eval xquad-r": 10.0}},
        "hybrid-s0": {"state": "done", "wall_s": {"train": 70.0, "eval xquad-r": 10.0}}},
        status={"state": "running", "pid": os.getpid(), "current_unit": "x-y-s1", "unit_started": 1000.0,
                "current": "[x-y-s1] training"})
    if recorded:
        assert [u["label"] for u in study.read_study("s", tmp_path)["units"]] == [u.label for u in plan(spec)]
    got = study.progress("s", tmp_path, now=1030.0)
    assert got["done"] == 3 and got["total"] == 5
    assert [r["state"] for r in got["units"]] == ["done", "done", "done", "training", "pending"]
    assert [(r["kind"], r["sampler"], r["seed"]) for r in got["units"]] == [
        ("base", "base", None), ("fine-tune", "x-y", 0), ("fine-tune", "hybrid", 0), ("fine-tune", "x-y", 1),
        ("fine-tune", "hybrid", 1)]
    assert got["eta_s"] == pytest.approx((70 - 30) + 70)
    assert study.partial(folder) == {"done": 3, "total": 5, "state": "running"}
    assert not study.visible(folder)  # one finished run per sampler


def test_a_study_page_reads_its_study_without_importing_torch(tmp_path):
    """The study's readers the pages call (the bundle selector's study_bundles, the partial-verdict notice, the
    Study page's list, reconcile and progress table) read study.json's planned units: a cold page visit pays no
    torch / sentence-transformers import for a study (see test_pages'
    test_a_bundle_page_reads_its_bundle_without_importing_torch for the reference bundles)."""
    from hybridviz.experiments.grid import GridSpec

    spec = GridSpec(model="tiny", samplers=["x-x-mono", "x-y"], seeds=[0, 1], alphas=[0.25], methods=[],
                    sampler_method=None, evaluations=[{"task": "xquad-r", "languages": None, "limit": 10}])
    done = {"state": "done", "wall_s": {"train": 5.0, "eval xquad-r": 1.0}}
    folder = write_study(tmp_path / "studies" / "s1", spec, units={
        "base": {"state": "done", "wall_s": {"eval xquad-r": 1.0}},
        **{f"{s}-s{seed}": {**done, "sampler": s} for s in spec.samplers for seed in spec.seeds}},
        status={"state": "running", "pid": os.getpid(), "current_unit": "hybrid-a0.25-s0",
                "current": "[hybrid-a0.25-s0] evaluating xquad-r", "unit_started": time.time()},
        progress={"units": {"hybrid-a0.25-s0": {"state": "running", "host": "h1", "device": "cpu"}}})
    (folder / "summary.json").write_text("{}")
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from types import SimpleNamespace\n"
            "from hybridviz import dashboard\n"
            "from hybridviz.data import paths\n"
            "from hybridviz.experiments import study\n"
            # the Study page's own imports (pages/9_Study.py)
            "from hybridviz.data.train_extra import LOADERS\n"
            "from hybridviz.results.store import sweep_choice\n"
            "from hybridviz.training.data import MAX_JSONL_BYTES, save_upload\n"
            "from hybridviz.training.runs import list_runs\n"
            f"paths.STUDIES_DIR = Path({str(folder.parent)!r})\n"
            "assert study.reconcile() == [] and study.list_studies() == ['s1']\n"
            "assert list(dashboard.study_bundles()) == ['study:s1']\n"
            "folder = study.study_dir('s1')\n"
            "state = dashboard.partial_notice(SimpleNamespace(path=folder))\n"
            "assert state == {'done': 5, 'total': 6, 'state': 'running'}, state\n"
            "assert study.visible(folder) and study.finished_runs(folder) == {'x-x-mono': 2, 'x-y': 2}\n"
            "info = study.progress('s1')\n"
            "assert (info['done'], info['total']) == (5, 6), info\n"
            "assert info['units'][-1]['unit'] == 'hybrid-a0.25-s0', info['units'][-1]\n"
            "assert info['units'][-1]['state'] == 'evaluating on h1', info['units'][-1]\n"
            )
    assert_runs_without_heavy_imports(code)


# ----------------------------------------------------------------------------------------------- lab mends


def test_a_dead_lab_evaluation_is_marked_failed_with_the_reason_and_reaped(tmp_path):
    """Killing the worker while it evaluated used to leave "Evaluating…" forever and a zombie: now the next look
    reaps it and the evaluation fails, naming how the worker ended."""
    from hybridviz.experiments import lab
    from hybridviz.fileio import write_json_atomic
    from hybridviz.training.runs import Run, process_end

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run = Run("r1", tmp_path)
    write_json_atomic(run.dir / "config.json", {"model": "tiny"})
    write_json_atomic(run.dir / "status.json", {"state": "done", "pid": child.pid})
    write_json_atomic(run.dir / "evaluation.json", {"state": "evaluating", "task": "xquad-r", "done": [],
                                                    "total": 2, "pid": child.pid})
    assert lab.reconcile_evaluations(tmp_path) == []  # alive
    os.kill(child.pid, signal.SIGKILL)
    time.sleep(0.3)
    assert open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie until reaped
    assert lab.reconcile_evaluations(tmp_path) == ["r1"]
    record = lab.evaluation_state(run)
    assert record["state"] == "failed" and "killed by signal 9" in record["error"] and "xquad-r" in record["error"]
    assert not os.path.exists(f"/proc/{child.pid}")  # reaped
    assert process_end(child.pid) is not None


def test_lab_cancel_while_evaluating_stops_the_worker(tmp_path):
    from hybridviz.experiments import lab
    from hybridviz.fileio import write_json_atomic
    from hybridviz.training.runs import Run

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    run = Run("r2", tmp_path)
    write_json_atomic(run.dir / "config.json", {"model": "tiny"})
    write_json_atomic(run.dir / "status.json", {"state": "done", "pid": child.pid})
    write_json_atomic(run.dir / "evaluation.json", {"state": "evaluating", "task": "mkqa-answers",
                                                    "done": ["xquad-r"], "total": 2, "pid": child.pid})
    assert "evaluation cancelled (1 of 2" in lab.cancel(run)
    assert lab.evaluation_state(run)["state"] == "cancelled"
    assert child.poll() is not None or not os.path.exists(f"/proc/{child.pid}")


def test_lab_times_are_measured_not_written(tmp_path):
    """The page's time figures: seconds per step from the last runs' train logs (the first logged step, which
    carries the model's load, excluded) and each benchmark's evaluation time; the whole evaluation's ETA."""
    from hybridviz.experiments import lab
    from hybridviz.fileio import write_json_atomic
    from hybridviz.training.runs import Run

    for i, (step_s, xq) in enumerate([(2.0, 100.0), (4.0, 300.0)]):
        run = Run(f"r{i}", tmp_path)
        write_json_atomic(run.dir / "config.json", {"model": "me5-small"})
        write_json_atomic(run.dir / "lab.json", {"submitted": i})
        for step in (10, 20):
            run.log({"step": step, "loss": 1.0, "seconds": 5 + step * step_s})
        write_json_atomic(run.dir / "evaluation.json", {"state": "done", "timings": {"xquad-r": xq,
                                                                                     "mkqa-answers": 50.0}})
    got = lab.measured_times(tmp_path)
    assert got == {"step_s": 3.0, "eval_s": {"xquad-r": 200.0, "mkqa-answers": 50.0}, "runs": 2}
    record = {"task": "xquad-r", "tasks": ["xquad-r", "mkqa-answers"], "done": [], "started": 1000.0}
    assert lab.evaluation_eta(record, got, now=1050.0) == pytest.approx(150 + 50)
    assert lab.evaluation_eta({**record, "tasks": ["xquad-r", "mkqa-mteb"]}, got, now=1050.0) is None


def test_lab_evaluates_a_labelled_seeded_sample_first(tmp_path, data_root):
    """First figures fast: each benchmark whose evaluation is larger than the sample is first evaluated on a
    seeded sample (its own folder, never listed as a result); a benchmark already that small is not sampled."""
    from hybridviz.encoders.locators import tiny_dir
    from hybridviz.experiments import lab
    from hybridviz.experiments.bundle import lab_results
    from hybridviz.fileio import write_json_atomic
    from hybridviz.training.runs import Run
    from hybridviz.training.trainer import TrainConfig

    run = Run("r3", tmp_path)
    write_json_atomic(run.dir / "config.json", {"model": "tiny"})
    run.model_dir.symlink_to(tiny_dir(0), target_is_directory=True)
    specs = [{"task": "mkqa-answers", "languages": ["en", "es"], "limit": None},
             {"task": "xquad-r", "languages": ["en"], "limit": 20}]
    samples = lab.evaluate_samples(run, TrainConfig(model="tiny"), specs)
    assert list(samples) == ["mkqa-answers"]
    got = samples["mkqa-answers"]
    assert got["questions"] == lab.SAMPLE_QUESTIONS and got["seed"] == lab.SAMPLE_SEED and 0 <= got["multi mAP"] <= 1
    assert (run.dir / "samples" / "mkqa-answers" / "metrics.json").is_file()
    assert lab_results(tmp_path) == []  # a sample is not a result
