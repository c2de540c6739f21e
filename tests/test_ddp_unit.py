"""A grid unit trained by several DDP processes (training/distributed.py, `--ddp-procs-per-unit`): the unit's exact
run is trained under torchrun (gloo on the CPU), then evaluated in the unit's own process; a failing rank is the
unit's error and leaves no half-written evaluation. Also what DDP means for the samplers: each rank gets whole,
distinct batches of the sampler, all of one type per step (docs/cluster.md, "Several GPUs in one unit")."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from hybridviz.errors import HybridvizError
from hybridviz.experiments import executors as X
from hybridviz.experiments.grid import GridSpec, run_grid
from hybridviz.results.store import read_manifest, read_progress
from hybridviz.training.distributed import FAULT_ENV, DistributedTrainingError, read_request, write_request
from hybridviz.training.runs import Run
from hybridviz.training.trainer import TrainConfig


def one_unit_spec() -> GridSpec:
    """One hybrid fine-tune of the tiny model (3 steps, batch 8) and one small evaluation (XQuAD-R en+de, 20
    groups): tests/test_executors.py's tiny grid, one unit of it."""
    return GridSpec(model="tiny", samplers=["hybrid"], seeds=[0], steps=3, batch_size=8, learning_rate=1e-3,
                    warmup_steps=0, alphas=[], methods=[], sampler_method=None, precision="fp32",
                    train_precision="fp32", evaluations=[{"task": "xquad-r", "languages": ["en", "de"], "limit": 20}])


# ------------------------------------------------------------------------------------------------ no torchrun


def test_a_training_request_names_the_unit_s_own_run(tmp_path):
    config = one_unit_spec().train_config("hybrid", 0)
    config = replace(config, train_languages=["en", "de"], extra={**config.extra, "sub_batch": 4})
    write_request(tmp_path / "request.json", config, Path("runs"), ("xquad-r",), "run")
    request = read_request(tmp_path / "request.json")
    assert request["config"] == config and request["config"].run_id() == config.run_id()
    assert request["root"] == Path("runs").resolve() and request["benchmarks"] == ("xquad-r",)
    assert request["slot"] == "run"
    # a run's config.json (with its checksums and provenance) gives back the same config
    assert TrainConfig.from_dict({**asdict(config), "run_id": "x", "data_files": {}}) == config
    # a config that no longer names the requested run is refused
    changed = json.loads((tmp_path / "request.json").read_text())
    changed["config"]["steps"] = 4
    (tmp_path / "request.json").write_text(json.dumps(changed))
    with pytest.raises(DistributedTrainingError, match="names run"):
        read_request(tmp_path / "request.json")


def test_processes_per_unit():
    assert X.make_executor("serial").ddp_procs == 1
    serial = X.make_executor("serial", ddp_procs=2)
    assert serial.describe() == {"kind": "serial", "ddp_procs": 2}
    assert X.make_executor(**X.executor_options(serial)) == serial
    assert X.executor_options(X.SerialExecutor()) == {"kind": "serial"}
    ray = X.RayExecutor()
    assert [ray.processes(g) for g in (0, 0.25, 1, 1.5, 2, 4)] == [1] * 6  # asked for, never implied by GPUs
    assert X.RayExecutor(ddp_procs=1).processes(4) == 1 and X.RayExecutor(ddp_procs=2).processes(0) == 2
    for bad in (0, -1, 1.5):
        with pytest.raises(HybridvizError, match="ddp-procs-per-unit"):
            X.make_executor("serial", ddp_procs=bad)


def test_each_rank_gets_a_whole_distinct_batch_of_the_step_s_type(data_root):
    """What accelerate deals to 2 ranks (the sentence-transformers trainer's settings: whole batches, uneven
    allowed): the sampler's batches in turn, so each rank holds one sampler batch of batch_size, both of the
    step's one type; the in-batch negatives stay within it (the loss does not gather across ranks)."""
    from accelerate.data_loader import BatchSamplerShard

    from hybridviz.training.data import lareqa_pairs
    from hybridviz.training.samplers import HybridBatchSampler

    pairs = lareqa_pairs("mlqa-r").columns()
    sampler = HybridBatchSampler(pairs, batch_size=32, alpha=0.5, seed=0, world_size=2, num_batches=400)
    ranks = [list(BatchSamplerShard(sampler, num_processes=2, process_index=r, split_batches=False,
                                    even_batches=False)) for r in (0, 1)]
    assert [b for step in zip(*ranks) for b in step] == list(sampler)

    def kind(batch):
        return {"x-y" if pairs["query_lang"][i] != pairs["passage_lang"][i] else pairs["query_lang"][i]
                for i in batch}

    for first, second in zip(*ranks):
        assert len(first) == len(second) == 32 and first != second
        assert len(kind(first)) == 1 and kind(first) == kind(second)
    # why the negatives stay per rank: the two batches of one step often hold one parallel group (translations
    # of one question), which the sampler keeps out of any one batch; gathered, they would be false negatives
    shared = sum(bool({pairs["group"][i] for i in a} & {pairs["group"][i] for i in b}) for a, b in zip(*ranks))
    assert shared > 0


def test_the_installed_loss_gathers_across_devices_only_when_asked():
    import inspect

    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    assert inspect.signature(MultipleNegativesRankingLoss).parameters["gather_across_devices"].default is False


# ------------------------------------------------------------------------------------------------ torchrun


@pytest.fixture
def own_embeddings(tmp_path, monkeypatch):
    """This test's evaluations compute their embeddings into a cache of their own."""
    from hybridviz.data import paths

    monkeypatch.setattr(paths, "EMBEDDINGS_DIR", tmp_path / "embeddings")


@pytest.mark.slow  # two torchrun processes on the CPU, then an evaluation (about 40-60 s on 2 busy cores)
def test_a_unit_trained_by_two_ddp_processes_is_saved_and_evaluated(tmp_path, data_root, own_embeddings):
    out, runs = tmp_path / "bundle", tmp_path / "runs"
    logs: list[str] = []
    run_grid(out, one_unit_spec(), log=logs.append, runs_root=runs, only=["hybrid-s0"],
             executor=X.make_executor("serial", ddp_procs=2))
    state = read_manifest(out)["units"]["hybrid-s0"]
    assert state["state"] == "done" and "train" in state["wall_s"] and "eval xquad-r" in state["wall_s"]
    assert state["ddp"] == {"processes": 2, "launcher": "torchrun", "backend": "gloo"}
    (where,) = state["ran_on"]
    assert where["executor"] == "serial" and where["ddp_processes"] == 2
    run = Run(state["run_id"], runs)
    one_process = one_unit_spec().train_config("hybrid", 0)
    # the unit's own run, named apart from the one-process run of the same spec (2 batches a step: other weights)
    assert state["run_id"] != one_process.run_id()
    assert state["run_id"] == replace(one_process, extra={**one_process.extra, "ddp_processes": 2}).run_id()
    assert json.loads((Run(state["run_id"], runs).dir / "config.json").read_text())["extra"]["ddp_processes"] == 2
    status = run.status()
    assert status["state"] == "done" and status["world_size"] == 2 and status["step"] == 3
    assert (run.model_dir / "modules.json").is_file() and (run.dir / "torchrun.log").is_file()
    assert [r["step"] for r in run.train_log()] == [1, 2, 3]  # rank 0 alone writes the registry
    folder = out / "models" / "hybrid-s0"
    assert sorted(p.name for p in folder.iterdir()) == ["training", "xquad-r"]
    metrics = json.loads((folder / "xquad-r" / "metrics.json").read_text())
    assert metrics["model"]["spec"] == str(run.model_dir)  # evaluated in this process, on the saved model
    assert json.loads((folder / "training" / "status.json").read_text())["world_size"] == 2
    assert any("with 2 DDP processes (torchrun)" in line for line in logs)
    assert read_manifest(out)["sessions"][-1]["executor"] == {"kind": "serial", "ddp_procs": 2}


@pytest.mark.slow  # torchrun started and torn down
def test_a_failing_rank_fails_the_unit_with_its_error_and_no_half_evaluation(tmp_path, data_root, monkeypatch,
                                                                             own_embeddings):
    out, runs = tmp_path / "bundle", tmp_path / "runs"
    monkeypatch.setenv(FAULT_ENV, "1")  # rank 1 raises; torchrun then stops rank 0
    with pytest.raises(DistributedTrainingError) as caught:
        run_grid(out, one_unit_spec(), log=lambda m: None, runs_root=runs, only=["hybrid-s0"],
                 executor=X.make_executor("serial", ddp_procs=2))
    message = str(caught.value)
    assert message.startswith("Distributed training of hybrid-a0.5-s0-3st-") and "2 processes" in message
    head, tail = message.split("The tail of torchrun's stderr:\n")
    assert "Traceback" in tail and "injected fault on rank 1 at step 2" in tail
    # the last line names the cause (the Ray executor reports a unit's error by its last line)
    cause = f"rank 1: RuntimeError: injected fault on rank 1 at step 2 ({FAULT_ENV})"
    assert message.splitlines()[-1] == cause
    progress = read_progress(out)["units"]["hybrid-s0"]
    assert progress["state"] == "failed" and cause in progress["error"]
    folder = out / "models" / "hybrid-s0"
    assert not folder.exists() or not [p for p in folder.iterdir() if p.name.startswith("xquad-r")]
    assert not list(out.rglob("*.partial"))
    unit = read_manifest(out).get("units", {}).get("hybrid-s0", {})  # a serial grid stops at its first error
    assert "eval xquad-r" not in unit.get("wall_s", {})
    # the run failed mid-training (rank 0 had finished step 1), with the cause, not rank 0's lost connection
    one_process = one_unit_spec().train_config("hybrid", 0)
    run = Run(replace(one_process, extra={**one_process.extra, "ddp_processes": 2}).run_id(), runs)
    assert run.status()["state"] == "failed" and run.status()["error"] == f"distributed training failed: {cause}"
    assert [r["step"] for r in run.train_log()] == [1] and not run.model_dir.exists()
    # the next invocation (one process here: the spec's own run) finishes the unit, without a DDP record
    monkeypatch.delenv(FAULT_ENV)
    run_grid(out, one_unit_spec(), log=lambda m: None, runs_root=runs, only=["hybrid-s0"])
    state = read_manifest(out)["units"]["hybrid-s0"]
    assert state["state"] == "done" and "ddp" not in state and state["run_id"] == one_process.run_id()
    assert Run(one_process.run_id(), runs).status()["world_size"] == 1


@pytest.mark.slow  # a local Ray cluster of 2 CPUs, whose one task starts torchrun (about 60-90 s on 2 busy cores)
def test_a_ray_unit_trains_with_ddp_inside_its_task(tmp_path, data_root, monkeypatch):
    out, runs = tmp_path / "bundle", tmp_path / "runs"
    monkeypatch.setenv("HYBRIDVIZ_EMBEDDINGS", str(tmp_path / "embeddings"))  # the workers' environment
    logs: list[str] = []
    # a local cluster of its own (`run` stops it), or the session's where a test started one (its environment)
    run_grid(out, one_unit_spec(), log=logs.append, runs_root=runs, only=["hybrid-s0"],
             executor=X.RayExecutor(num_cpus=2, cpus_per_unit=2, ddp_procs=2))
    manifest = read_manifest(out)
    state = manifest["units"]["hybrid-s0"]
    assert state["state"] == "done" and state["ddp"]["processes"] == 2
    (where,) = state["ran_on"]
    assert where["executor"] == "ray" and where["node_id"] and where["ddp_processes"] == 2
    assert manifest["sessions"][-1]["executor"]["ddp_procs"] == 2
    assert Run(state["run_id"], runs).status()["world_size"] == 2
    assert (out / "models" / "hybrid-s0" / "xquad-r" / "metrics.json").is_file()
    assert any("each fine-tune as 2 DDP processes (torchrun)" in line for line in logs)


LAUNCHER = """
import sys
from dataclasses import replace
sys.path[:0] = [{root!r}, {tests!r}]
from test_ddp_unit import one_unit_spec
from hybridviz.training.distributed import train_distributed
train_distributed(replace(one_unit_spec().train_config("hybrid", 0), steps=500), 2, root={runs!r})
"""


@pytest.mark.slow  # torchrun started, then its launcher killed in the middle of the training (40-90 s)
def test_no_training_process_outlives_a_killed_unit(tmp_path, data_root):
    """A unit's process killed outright (a Ray worker that dies, SIGKILL) takes torchrun's agent and its ranks
    with it: nothing goes on training a run the retry will want."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    runs = tmp_path / "runs"
    here = Path(__file__).resolve().parent
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER.format(root=str(here.parent), tests=str(here),
                                                                        runs=str(runs))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, step = time.time() + 300, 0
        while time.time() < deadline and step < 2 and launcher.poll() is None:
            status = next(runs.glob("*/status.json"), None)
            try:
                step = json.loads(status.read_text()).get("step", 0) if status else 0
            except ValueError:
                pass
            time.sleep(0.2)
        assert step >= 2, "the training was not seen running"
        tree = psutil.Process(launcher.pid).children(recursive=True)  # the agent and the two ranks
        assert len(tree) == 3, tree
    finally:
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
    gone, alive = psutil.wait_procs(tree, timeout=60)
    for process in alive:  # not left running, whatever the assertion says
        process.kill()
    assert not alive, [p.pid for p in alive]
