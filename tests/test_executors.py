"""The grid's executors (experiments/executors.py): the same tiny grid run serially and on a local Ray cluster
summarises to the same summary.json; a Ray worker killed in the middle of a unit is retried and the bundle is
complete, nothing duplicated or lost; a unit that keeps dying is reported with its error and leaves no
half-written evaluation. The oracle of "the same science" is the serial executor's bundle."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from hybridviz.data import paths
from hybridviz.errors import HybridvizError
from hybridviz.experiments import executors as X
from hybridviz.experiments.grid import GridSpec, plan, run_grid
from hybridviz.results import store
from hybridviz.results.store import read_manifest, read_progress, read_summary

LABELS = ["base", "x-x-mono-s0", "hybrid-s0", "x-x-mono-s1", "hybrid-s1"]


def tiny_spec() -> GridSpec:
    """2 samplers x 2 seeds of the tiny model, 3 steps, one small evaluation (XQuAD-R, 2 languages, 20 groups)."""
    return GridSpec(model="tiny", samplers=["x-x-mono", "hybrid"], seeds=[0, 1], steps=3, batch_size=8,
                    learning_rate=1e-3, warmup_steps=0, alphas=[], methods=[], sampler_method=None,
                    precision="fp32", train_precision="fp32",
                    evaluations=[{"task": "xquad-r", "languages": ["en", "de"], "limit": 20}])


def science(summary: dict) -> dict:
    """summary.json less what differs between two runs of one grid: provenance, dates and wall times."""
    drop = {"provenance", "created", "updated", "wall_s", "generated", "machine", "sessions"}

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in drop and not k.endswith("_s")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(summary)


def check_complete(out: Path, runs: Path, labels: list[str] = LABELS) -> None:
    """Every unit done once: one folder per unit with its one evaluation, a training record per fine-tune, one
    finished run per fine-tune, nothing staged left behind."""
    manifest = read_manifest(out)
    assert list(manifest["units"]) == labels  # in the plan's order, whichever finished first
    assert {label: s["state"] for label, s in manifest["units"].items()} == {label: "done" for label in labels}
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(labels)
    for label in labels:
        folder = out / "models" / label
        assert sorted(p.name for p in folder.iterdir()) == (["xquad-r"] if label == "base" else
                                                            ["training", "xquad-r"]), label
        assert (folder / "xquad-r" / "metrics.json").is_file()
    run_ids = {s["run_id"] for s in manifest["units"].values() if "run_id" in s}
    assert len(run_ids) == len([label for label in labels if label != "base"]) and {p.name for p in runs.iterdir() if p.is_dir()} == run_ids
    assert all(json.loads((runs / r / "status.json").read_text())["state"] == "done" for r in run_ids)
    assert not list(out.rglob("*.partial")) and not list(out.rglob("*.old"))


# ------------------------------------------------------------------------------------------------ no cluster


def test_jobs_group_a_fine_tune_with_the_method_units_on_its_weights():
    spec = GridSpec(model="tiny", samplers=["x-y", "hybrid"], seeds=[0], alphas=[0.25], methods=["center"],
                    sampler_method="lir", steps=3)
    jobs = [[u.label for u in job] for job in X.unit_jobs(plan(spec))]
    assert jobs == [["base", "base+center"], ["x-y-s0", "x-y-s0+lir"], ["hybrid-s0", "hybrid-s0+lir"],
                    ["hybrid-a0.25-s0"]]


def test_choosing_an_executor():
    assert isinstance(X.make_executor("serial"), X.SerialExecutor)
    with pytest.raises(HybridvizError, match="serial or ray"):
        X.make_executor("dask")
    with pytest.raises(HybridvizError, match="above 0"):
        X.make_executor("ray", cpus_per_unit=0)
    ray = X.make_executor("ray", address=" auto ", cpus_per_unit=1, max_retries=3)
    assert (ray.address, ray.cpus_per_unit, ray.gpus_per_unit, ray.max_retries) == ("auto", 1, None, 3)
    assert X.make_executor(**X.executor_options(ray)) == ray
    assert X.executor_options(X.SerialExecutor()) == {"kind": "serial"}


def test_progress_in_words():
    assert X.describe({"state": "running", "host": "gpu-3", "node_id": "abcdef0123", "device": "cuda",
                       "attempt": 2}) == "running on gpu-3 (node abcdef…, cuda, attempt 2)"
    assert X.describe({"state": "failed", "error": "OSError: disk full"}) == "failed: OSError: disk full"
    assert X.describe({"state": "queued"}) == "queued"


# ------------------------------------------------------------------------------------------------ the grids


@pytest.fixture(scope="module")
def serial_bundle(tmp_path_factory, data_root):
    """The oracle: the grid run serially, at one thread (as each Ray task of 1 CPU runs: sums split over threads
    round differently in their last bits), with an embedding cache of its own (nothing read from an earlier
    run's)."""
    import torch

    root = tmp_path_factory.mktemp("serial")
    logs: list[str] = []
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "EMBEDDINGS_DIR", root / "embeddings")
        X.limit_threads(1)
        try:
            run_grid(root / "bundle", tiny_spec(), log=logs.append, runs_root=root / "runs")
        finally:
            X.limit_threads(threads)
    return root / "bundle", root / "runs", logs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray cluster of 2 CPUs for the module's tests (each executor joins it), whose workers compute
    their own embeddings (HYBRIDVIZ_EMBEDDINGS). Ray is a test requirement (scripts/test.sh installs
    requirements-ray.txt): missing, these tests fail rather than skip."""
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HYBRIDVIZ_EMBEDDINGS", str(tmp_path_factory.mktemp("ray-embeddings")))
        X.RayExecutor(num_cpus=2).connect()  # the workers' environment is taken here
    yield ray
    ray.shutdown()


@pytest.mark.slow  # the quick tier stays under 3 min (#32)
def test_the_serial_executor_records_progress_and_where_units_ran(serial_bundle):
    out, runs, logs = serial_bundle
    check_complete(out, runs)
    progress = read_progress(out)
    assert progress["executor"] == {"kind": "serial"}
    assert {label: e["state"] for label, e in progress["units"].items()} == {label: "done" for label in LABELS}
    assert "[hybrid-s1] done" in logs and any(line.startswith("progress: 5 done") for line in logs)
    manifest = read_manifest(out)
    assert all(s["ran_on"][-1]["executor"] == "serial" and s["ran_on"][-1]["device"] == "cpu"
               for s in manifest["units"].values())
    assert manifest["sessions"][-1]["executor"] == {"kind": "serial"}


@pytest.mark.slow  # a local Ray cluster and 5 units
def test_a_ray_grid_summarises_like_the_serial_grid(serial_bundle, cluster, tmp_path):
    out, runs = tmp_path / "bundle", tmp_path / "runs"
    logs: list[str] = []
    run_grid(out, tiny_spec(), log=logs.append, runs_root=runs, executor=X.RayExecutor(cpus_per_unit=1))
    check_complete(out, runs)
    assert science(read_summary(out)) == science(read_summary(serial_bundle[0]))
    manifest = read_manifest(out)
    for state in manifest["units"].values():
        (where,) = state["ran_on"]
        assert where["executor"] == "ray" and where["node_id"] and where["host"] and where["device"] == "cpu"
    assert manifest["sessions"][-1]["executor"]["kind"] == "ray"
    progress = read_progress(out)
    assert {label: e["state"] for label, e in progress["units"].items()} == {label: "done" for label in LABELS}
    assert any(line.startswith("[x-x-mono-s1] running on ") for line in logs)


def kill_when(condition, killed: list) -> threading.Thread:
    """A thread that SIGKILLs the process `condition()` names (once), as a crash would."""
    def watch():
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            pid = condition()
            if pid:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def training_worker(runs: Path, run_id_part: str):
    """The pid of the worker training a run whose id contains `run_id_part`, once its training has started."""
    def find():
        for status in runs.glob("*/status.json"):
            try:
                state = json.loads(status.read_text())
            except ValueError:
                continue
            if run_id_part in status.parent.name and state.get("state") == "running" and state.get("pid"):
                return int(state["pid"])
        return None
    return find


@pytest.mark.slow  # a local Ray cluster, two units side by side, a killed worker and a retry
def test_a_worker_killed_in_training_is_retried_and_nothing_is_lost(serial_bundle, cluster, tmp_path):
    out, runs = tmp_path / "bundle", tmp_path / "runs"
    labels = ["x-x-mono-s0", "hybrid-s0"]
    killed: list[int] = []
    thread = kill_when(training_worker(runs, "hybrid"), killed)
    logs: list[str] = []
    run_grid(out, tiny_spec(), log=logs.append, runs_root=runs, only=labels,
             executor=X.RayExecutor(cpus_per_unit=1, max_retries=2))
    thread.join(timeout=1)
    assert killed, "no worker was killed: the training was not seen running"
    assert any(line.startswith("[hybrid-s0] its worker died") and "retrying" in line for line in logs), logs[-20:]
    check_complete(out, runs, labels)  # every unit once, no duplicate run, nothing staged
    progress = read_progress(out)["units"]
    assert {label: e.get("attempt", 1) for label, e in progress.items()} == {"x-x-mono-s0": 1, "hybrid-s0": 2}
    # the retried fine-tune is the same model, its figures the serial bundle's
    for label in labels:
        ours, theirs = (store.read_metrics(b / "models" / label / "xquad-r") for b in (out, serial_bundle[0]))
        assert ours["model"]["fingerprint"] == theirs["model"]["fingerprint"]
        assert ours["settings"] == theirs["settings"]


@pytest.mark.slow  # a local Ray cluster and a worker killed while it evaluates
def test_a_unit_that_keeps_dying_is_reported_and_leaves_no_half_evaluation(cluster, tmp_path):
    out, runs = tmp_path / "bundle", tmp_path / "runs"
    spec = tiny_spec()
    spec.seeds, spec.samplers = [0], ["hybrid"]

    def evaluating_worker():  # the worker of hybrid-s0 once its evaluation is being written
        if not list((out / "models" / "hybrid-s0").glob("xquad-r.partial")):
            return None
        status = next(runs.glob("*/status.json"), None)
        return int(json.loads(status.read_text())["pid"]) if status else None

    killed: list[int] = []
    thread = kill_when(evaluating_worker, killed)
    with pytest.raises(HybridvizError, match=r"1 unit\(s\) failed: hybrid-s0: its worker died in each of 1 attempt"):
        run_grid(out, spec, log=lambda m: None, runs_root=runs,
                 executor=X.RayExecutor(cpus_per_unit=1, max_retries=0))
    thread.join(timeout=1)
    assert killed
    manifest = read_manifest(out)
    assert manifest["units"]["base"]["state"] == "done"
    assert manifest["units"]["hybrid-s0"]["state"] == "failed" and "died" in manifest["units"]["hybrid-s0"]["error"]
    assert read_progress(out)["units"]["hybrid-s0"]["state"] == "failed"
    assert sorted(p.name for p in (out / "models" / "hybrid-s0").iterdir()) == ["training"]  # no xquad-r.partial
    # the next invocation finishes it (serially here): the fine-tune is reused, the evaluation done anew
    run_grid(out, spec, log=lambda m: None, runs_root=runs)
    assert read_manifest(out)["units"]["hybrid-s0"]["state"] == "done"
    assert "error" not in read_manifest(out)["units"]["hybrid-s0"]
