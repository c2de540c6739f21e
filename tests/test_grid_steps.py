"""The grid's steps (experiments/grid.py), each on its own against a bundle folder: plan the units, train or reuse
one, evaluate what is pending, refresh stale results, swap in a replacement. Training, loading and evaluating are
replaced by stand-ins that write what the real ones write; the oracles are the files each step leaves in the
bundle (read back through the results store), not what the step returns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridviz.errors import HybridvizError
from hybridviz.experiments import grid as G
from hybridviz.results import store
from hybridviz.results.format import METRICS, ResultsError

COMPLETE = {"code": {"source_sha256": "abc", "dirty": False}, "libraries": {"numpy": "2"},
            "settings": {"max_seq_length": 32}}
LEGACY = {"libraries": {"numpy": "2"}, "settings": {"max_seq_length": 32}}  # no code hash: stale


def spec(**kw) -> G.GridSpec:
    base = dict(model="tiny", samplers=["x-y"], seeds=[0], alphas=[], methods=[], sampler_method="center",
                steps=3, precision="fp32", train_precision="fp32",
                evaluations=[{"task": "xquad-r", "limit": 4}, {"task": "mkqa-queries", "limit": 4}])
    return G.GridSpec(**{**base, **kw})


def write_eval(folder: Path, fingerprint: str, provenance: dict = COMPLETE, task: str | None = None,
               marker: str = "old") -> None:
    store.write_report(folder, {"task": task or folder.name, "model": {"spec": "tiny", "fingerprint": fingerprint},
                                "languages": ["en"], "settings": {}, "provenance": provenance,
                                "notes": {"marker": marker}})


class FakeEncoder:
    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint

    def legacy_fingerprint(self) -> str:
        return "legacy-" + self.fingerprint


@pytest.fixture
def fakes(monkeypatch):
    """evaluate writes a complete metrics.json (marker "new") under the loaded model's fingerprint."""
    calls = {"evaluate": [], "load": [], "train": []}

    def evaluate(model, task, out_dir, encoder, **kw):
        calls["evaluate"].append((model, task, Path(out_dir)))
        write_eval(Path(out_dir), encoder.fingerprint, task=task, marker="new")

    def load_encoder(model, precision):
        calls["load"].append(model)
        return FakeEncoder(calls.get("fingerprint", "f1"))

    monkeypatch.setattr(G, "evaluate", evaluate)
    monkeypatch.setattr(G, "load_encoder", load_encoder)
    monkeypatch.setattr(G, "train", lambda *a, **k: calls["train"].append(a) or pytest.fail("trained"))
    return calls


def open_grid(tmp_path, **options) -> G.Grid:
    return G.open_grid(tmp_path / "bundle", options.pop("spec", spec()), log=lambda m: None,
                       runs_root=tmp_path / "runs", summarise=False, **options)


def manifest_on_disk(grid: G.Grid) -> dict:
    return json.loads((grid.out / "manifest.json").read_text())


def test_plan_units_follows_the_plan_and_only(tmp_path):
    grid = open_grid(tmp_path)
    assert [u.label for u in G.plan_units(grid)] == [u.label for u in G.plan(grid.spec)] == [
        "base", "x-y-s0", "x-y-s0+center"]
    assert [u.label for u in G.plan_units(grid, ["x-y-s0+center", "base"])] == ["base", "x-y-s0+center"]
    assert not (grid.out / "manifest.json").exists()  # planning writes nothing


def test_train_or_reuse_trains_once_and_copies_the_record(tmp_path, monkeypatch, fakes):
    grid = open_grid(tmp_path)
    unit = next(u for u in grid.units if u.label == "x-y-s0")

    def train(config, root, benchmarks=None, slot="registry"):  # what the trainer leaves in the run registry
        assert slot == "registry"  # the serial grid: one fine-tune at a time in the registry
        run = G.Run(config.run_id(), root)
        (run.model_dir).mkdir(parents=True)
        (run.dir / "config.json").write_text(json.dumps({"sampler": "x-y", "steps": 3}))
        (run.dir / "status.json").write_text(json.dumps({"state": "done"}))
        fakes["train"].append(config)
        return run

    monkeypatch.setattr(G, "train", train)
    model = G.train_or_reuse(grid, unit, G.unit_work(grid, unit))
    record = grid.out / "models" / "x-y-s0" / "training"
    assert json.loads((record / "config.json").read_text()) == {"sampler": "x-y", "steps": 3}
    assert json.loads((record / "status.json").read_text()) == {"state": "done"}
    state = manifest_on_disk(grid)["units"]["x-y-s0"]
    assert state["run_id"] == unit.config.run_id() and "train" in state["wall_s"]
    assert model.spec == str(G.Run(unit.config.run_id(), tmp_path / "runs").model_dir)
    assert model.replacement is None and len(fakes["train"]) == 1

    # weights on disk and a training record: reused, nothing trained or rewritten
    (record / "config.json").write_text("{}")
    again = G.train_or_reuse(grid, unit, G.unit_work(grid, unit))
    assert len(fakes["train"]) == 1 and (record / "config.json").read_text() == "{}"
    assert again.spec == model.spec
    base = G.train_or_reuse(grid, grid.units[0], G.unit_work(grid, grid.units[0]))
    assert base.spec == "tiny" and not (grid.out / "models" / "base").exists()


def test_train_or_reuse_refuses_other_weights_or_stages_a_replacement(tmp_path, fakes):
    grid = open_grid(tmp_path)
    unit = next(u for u in grid.units if u.label == "x-y-s0")
    grid.state(unit)["wall_s"]["train"] = 1.0
    G.Run(unit.config.run_id(), tmp_path / "runs").model_dir.mkdir(parents=True)  # the weights are here
    write_eval(grid.out / "models" / "x-y-s0" / "xquad-r", "old-weights")  # the bundle evaluated others
    with pytest.raises(G.DifferentWeights, match="not replacing or adding"):
        G.train_or_reuse(grid, unit, G.unit_work(grid, unit))
    assert not (grid.out / "models" / "x-y-s0" / "mkqa-queries").exists()

    grid.replace_retrained = True
    work = G.unit_work(grid, unit)
    model = G.train_or_reuse(grid, unit, work)
    replacement = grid.out / "models" / "x-y-s0.retrained"
    assert model.replacement == replacement and replacement.is_dir() and (replacement / "training").is_dir()
    assert work.folder == replacement and [ev["task"] for ev in work.pending] == ["xquad-r", "mkqa-queries"]
    replacing = manifest_on_disk(grid)["units"]["x-y-s0"]["replacing"]
    assert replacing == {"old_fingerprints": ["old-weights"], "new_fingerprint": "f1"}


def test_evaluate_pending_writes_each_missing_evaluation(tmp_path, fakes):
    grid = open_grid(tmp_path, tasks=["xquad-r"])
    base = grid.units[0]
    work = G.unit_work(grid, base)
    model = G.train_or_reuse(grid, base, work)
    G.evaluate_pending(grid, base, model, work)
    folder = grid.out / "models" / "base"
    assert [f.name for f, _ in store.task_evaluations(folder)] == ["xquad-r"]  # --tasks: the other waits
    assert store.read_metrics(folder / "xquad-r")["notes"]["marker"] == "new"
    assert "eval xquad-r" in manifest_on_disk(grid)["units"]["base"]["wall_s"]
    assert fakes["load"] == ["tiny"]
    again = G.unit_work(grid, base)
    assert again.pending == [] and again.stale == []


def test_refresh_stale_swaps_in_a_new_evaluation_of_the_same_model(tmp_path, fakes):
    grid = open_grid(tmp_path, refresh=True)
    base = grid.units[0]
    folder = grid.out / "models" / "base"
    write_eval(folder / "xquad-r", "f1", LEGACY)
    write_eval(folder / "mkqa-queries", "f1")
    work = G.unit_work(grid, base)
    assert [ev["task"] for ev in work.stale] == ["xquad-r"] and work.pending == []
    G.refresh_stale(grid, base, G.train_or_reuse(grid, base, work), work)
    assert store.read_metrics(folder / "xquad-r")["notes"]["marker"] == "new"
    assert store.read_metrics(folder / "mkqa-queries")["notes"]["marker"] == "old"
    assert sorted(p.name for p in folder.iterdir()) == ["mkqa-queries", "xquad-r"]  # no .refresh or .old left
    assert manifest_on_disk(grid)["units"]["base"]["refreshed"] == ["xquad-r"]

    # another model's evaluation is never replaced
    write_eval(folder / "xquad-r", "someone-else", LEGACY)
    work = G.unit_work(grid, base)
    with pytest.raises(HybridvizError, match="not replacing it"):
        G.refresh_stale(grid, base, G.train_or_reuse(grid, base, work), work)
    assert store.read_metrics(folder / "xquad-r")["model"]["fingerprint"] == "someone-else"


def test_swap_in_replacement_waits_for_every_task_then_replaces_the_unit(tmp_path):
    grid = open_grid(tmp_path)
    unit = next(u for u in grid.units if u.label == "x-y-s0")
    models = grid.out / "models"
    for task in ("xquad-r", "mkqa-queries"):
        write_eval(models / "x-y-s0" / task, "old-weights")
        write_eval(models / "x-y-s0+center" / task, "old-weights+center")
    grid.state(unit)["replacing"] = {"old_fingerprints": ["old-weights"], "new_fingerprint": "f2"}
    grid.state(next(u for u in grid.units if u.method))["state"] = "done"
    replacement = models / "x-y-s0.retrained"
    write_eval(replacement / "xquad-r", "f2", marker="new")
    model = G.UnitModel("run", "fp32", replacement=replacement)
    work = G.UnitWork(replacement, [], [])

    assert not G.swap_in_replacement(grid, unit, model, work)  # mkqa-queries is not done yet
    assert manifest_on_disk(grid)["units"]["x-y-s0"]["state"] == "replacing"
    assert store.recorded_fingerprints(models / "x-y-s0") == {"old-weights"} and replacement.is_dir()

    write_eval(replacement / "mkqa-queries", "f2", marker="new")
    assert G.swap_in_replacement(grid, unit, model, work) and work.swapped
    assert store.recorded_fingerprints(models / "x-y-s0") == {"f2"}
    assert not replacement.exists() and not (models / "x-y-s0.old").exists()
    assert not (models / "x-y-s0+center").exists()  # the old checkpoint's +method figures leave with it
    G.finish_unit(grid, unit, work)
    units = manifest_on_disk(grid)["units"]
    assert units["x-y-s0"]["state"] == "done" and units["x-y-s0"]["replaced"]["old_fingerprints"] == ["old-weights"]
    assert units["x-y-s0+center"]["state"] == "pending" and units["x-y-s0+center"]["wall_s"] == {}


def test_a_damaged_metrics_file_is_one_error_everywhere(tmp_path, fakes):
    from hybridviz.experiments.bundle import BundleError, load_bundle

    grid = open_grid(tmp_path)
    grid.save()
    grid.state(grid.units[0])
    grid.save()
    (grid.out / "models" / "base" / "xquad-r").mkdir(parents=True)
    (grid.out / "models" / "base" / "xquad-r" / METRICS).write_text("{cut")
    with pytest.raises(ResultsError, match="xquad-r/metrics.json is damaged"):
        store.read_metrics(grid.out / "models" / "base" / "xquad-r")
    with pytest.raises(BundleError, match="xquad-r/metrics.json is damaged"):
        load_bundle(grid.out)
    with pytest.raises(ResultsError, match="xquad-r/metrics.json is damaged"):
        G.unit_work(open_grid(tmp_path, refresh=True), grid.units[0])
    with pytest.raises(ResultsError, match="metrics.json is damaged"):
        G.check_same_weights(grid.out, "base", "tiny", "fp32")
