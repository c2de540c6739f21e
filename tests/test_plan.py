"""The analysis plan (hybridviz/experiments/plan.py): JSON round trip, what a bundle's statistics read from it,
and a bundle that refuses a second, different plan."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from hybridviz.experiments.plan import (DEFAULT_PLAN, AnalysisPlan, PlanError, plan_in, plan_of, read_plan_file,
                                        record_plan)


def _new_plan(**changes) -> AnalysisPlan:
    return replace(AnalysisPlan(name="converged-v1", timing="before the runs", seeds=[0, 1, 2, 3, 4],
                                stopping={"criterion": "mean of held-out mono, cross and multi mAP", "eval_steps": 100,
                                          "patience": 5, "max_steps": 3000, "validation": "held-out MLQA-R groups"}),
                   **changes)


def test_plan_round_trips_through_json_and_rejects_unknown_or_bad_fields():
    plan = _new_plan()
    again = AnalysisPlan.from_json(plan.to_json())
    assert again == plan and again.to_dict() == plan.to_dict()
    assert AnalysisPlan.from_json(DEFAULT_PLAN.to_json()) == DEFAULT_PLAN
    with pytest.raises(PlanError, match="unknown fields"):
        AnalysisPlan.from_dict({**plan.to_dict(), "primary_family": []})
    bad = plan.to_dict()
    bad["families"]["primary"]["correction"] = "bonferroni"
    with pytest.raises(PlanError, match="correction"):
        AnalysisPlan.from_dict(bad)
    with pytest.raises(PlanError, match="paired_by_seed"):
        AnalysisPlan.from_dict({**plan.to_dict(), "paired_by_seed": True})


def test_the_plan_decides_families_clusters_and_margins():
    plan = DEFAULT_PLAN
    samplers = ["base", "x-x-mono", "x-y", "hybrid"]
    assert plan.family("x-y", "hybrid", "multi", "mAP", samplers) == "primary"
    assert plan.family("x-y", "hybrid", "cross", "mAP", samplers) == "secondary"
    assert plan.family("hybrid", "x-y", "multi", "mAP", samplers) == "secondary"  # the named orientation only
    assert plan.family("base", "base+center", "multi", "mAP", samplers) == "training-free"
    assert plan.family("base", "base+center@index", "multi", "mAP", samplers) == "transductive"
    assert plan.family("base+center@index", "x-y", "multi", "mAP", samplers) == "transductive"
    assert plan.level("xquad-r") == "paragraph" and plan.level("mkqa-queries") == "question"
    assert plan.level("some-new-task") == "question"
    assert plan.margin("mAP") == 0.01 and plan.margin("max_rank_distance", 1212.0) == pytest.approx(24.24)
    assert plan.margin("max_rank_distance") is None and plan.margin("rank_corr") is None
    # another plan changes what the statistics read: a primary family on cross-lingual mAP
    other = _new_plan(primary_cells=[["cross", "mAP"]])
    assert other.family("x-y", "hybrid", "cross", "mAP", samplers) == "primary"
    assert other.family("x-y", "hybrid", "multi", "mAP", samplers) == "secondary"


def test_a_bundle_without_a_plan_reads_the_post_hoc_default_with_its_own_seeds():
    manifest = {"spec": {"seeds": [0, 1, 2], "steps": 100}, "units": {"base": {}}}
    plan = plan_of(manifest)
    assert plan.timing == "post hoc" and plan.label == "post hoc plan" and plan.seeds == [0, 1, 2]
    assert plan.stopping["max_steps"] == 100 and "fixed step budget" in plan.stopping["criterion"]
    assert plan_in({}) == DEFAULT_PLAN and plan_in({"plan": plan.to_dict()}) == plan


def test_a_manifest_takes_one_plan_before_its_units_and_refuses_another():
    plan = _new_plan()
    manifest = {"spec": {"seeds": [0, 1, 2, 3, 4]}}
    record_plan(manifest, plan, commit="abc123", file="plans/converged.json")
    assert manifest["analysis_plan"] == {"plan": plan.to_dict(), "commit": "abc123", "file": "plans/converged.json"}
    assert plan_of(manifest) == plan and plan_of(manifest).label.endswith("(committed before the runs)")
    manifest["units"] = {"base": {"state": "done"}}
    record_plan(manifest, plan.to_dict())  # the same plan again, on resuming: nothing changes
    assert manifest["analysis_plan"]["commit"] == "abc123"
    with pytest.raises(PlanError, match="already holds the analysis plan"):
        record_plan(manifest, _new_plan(margins={"mAP": {"kind": "absolute", "value": 0.02, "why": "wider"}}))
    # a bundle whose units ran without a plan cannot be given one afterwards
    with pytest.raises(PlanError, match="before the first unit"):
        record_plan({"units": {"base": {}}}, plan)


def test_run_grid_writes_the_plan_before_the_first_unit_and_refuses_a_conflicting_one(tmp_path, monkeypatch):
    from hybridviz.experiments import grid

    def no_model(*args, **kwargs):
        raise RuntimeError("the first unit started")

    monkeypatch.setattr(grid, "load_encoder", no_model)
    spec = grid.GridSpec(samplers=[], seeds=[0], alphas=[], methods=[], sampler_method=None,
                         evaluations=[{"task": "xquad-r", "languages": ["en"], "limit": 5}])
    plan = _new_plan()
    with pytest.raises(RuntimeError, match="first unit started"):
        grid.run_grid(tmp_path / "b", spec, log=lambda m: None, analysis_plan={"plan": plan.to_dict(),
                                                                               "commit": "abc", "file": "p.json"})
    written = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert written["analysis_plan"]["plan"] == plan.to_dict() and written["analysis_plan"]["commit"] == "abc"
    other = _new_plan(name="another")
    with pytest.raises(PlanError, match="already holds"):
        grid.run_grid(tmp_path / "b", spec, log=lambda m: None, analysis_plan=other.to_dict())


def test_a_plan_file_reads_with_its_commit_only_when_committed(tmp_path):
    import subprocess

    path = tmp_path / "plan.json"
    path.write_text(_new_plan().to_json())
    plan, commit = read_plan_file(path)
    assert plan == _new_plan() and commit is None  # not in any repository
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "plan.json"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "plan"], cwd=tmp_path,
                   check=True)
    assert len(read_plan_file(path)[1]) == 40
    path.write_text(_new_plan(seeds=[0, 1, 2]).to_json())  # changed since: no commit holds it
    assert read_plan_file(path)[1] is None


def test_a_plan_refuses_a_grid_whose_stopping_rule_or_seeds_it_does_not_declare():
    from hybridviz.experiments.grid import GridSpec
    from hybridviz.experiments.plan import plan_mismatches

    committed = AnalysisPlan.from_json(open("plans/converged-me5-mlqa-r.json", encoding="utf-8").read())
    rule = committed.stopping
    extra = {"eval_steps": rule["eval_steps"], "patience": rule["patience"]}
    spec = GridSpec(seeds=[0, 1, 2, 3, 4], steps=rule["max_steps"], warmup_steps=rule["warmup_steps"],
                    train_extra=extra)
    assert plan_mismatches(committed, spec) == []
    off = plan_mismatches(committed, replace(spec, seeds=[0, 1, 2], train_extra={**extra, "patience": 5}))
    assert len(off) == 2 and any("patience" in m and "5" in m for m in off) and any("seeds" in m for m in off)
    # a plan that states no stopping rule (the post hoc default) checks only what it states
    assert plan_mismatches(DEFAULT_PLAN, spec) == []
