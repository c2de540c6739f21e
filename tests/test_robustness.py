"""The Robustness view: one verdict row per set-up (bundle), and a sentence wherever set-ups disagree."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from hybridviz.experiments.bundle import Bundle
from hybridviz.experiments.robustness import disagreements, robustness_rows, setup_of
from hybridviz.experiments.stats import verdict_of

ROOT = Path(__file__).resolve().parents[1]


def planted_bundle(tmp_path, name: str, means: dict, p_hybrid_vs_xy: float, spec: dict | None = None) -> Bundle:
    """A bundle whose summary plants the samplers' xquad-r multilingual means and the hybrid - x-y test."""
    cells = [{"task": "xquad-r", "setting": "multi", "metric": "mAP", "group": g, "mean": m, "std": 0.0, "n": 3}
             for g, m in means.items()]
    tests = []
    for a, b in (("x-x-mono", "x-y"), ("x-x-mono", "hybrid"), ("x-y", "hybrid")):
        delta = means[b] - means[a]
        p = p_hybrid_vs_xy if (a, b) == ("x-y", "hybrid") else 0.5
        direction = "better" if delta > 0 else "worse" if delta < 0 else "equal"
        tests.append({"task": "xquad-r", "setting": "multi", "metric": "mAP", "a": a, "b": b, "delta": delta,
                      "ci_low": delta - 0.01, "ci_high": delta + 0.01, "p_adjusted": p, "correction": "holm (primary)",
                      "pairs_agree": 9, "n_pairs": 9, "direction": direction, "margin": 0.01, "p_tost_adjusted": 0.5,
                      "mde": 0.012, "mde_family": 0.016,
                      "verdict": verdict_of(p, 0.5, delta, delta - 0.01, delta + 0.01, 0.01, "mAP")})
    path = tmp_path / name
    path.mkdir()
    (path / "summary.json").write_text(json.dumps({"version": 3, "cells": cells, "tests": tests}))
    results = [SimpleNamespace(group=g, task="xquad-r") for g in means]
    manifest = {"spec": {"model": "muse", "train_data": "mlqa-r", "batch_size": 100, "steps": 200,
                         "seeds": [0, 1, 2], "precision": "fp32", **(spec or {})}}
    return Bundle(path, manifest, results)


def test_each_set_up_gets_its_own_verdict_row(tmp_path):
    a = planted_bundle(tmp_path, "a", {"x-x-mono": 0.50, "x-y": 0.55, "hybrid": 0.57}, p_hybrid_vs_xy=0.01)
    b = planted_bundle(tmp_path, "b", {"x-x-mono": 0.50, "x-y": 0.56, "hybrid": 0.55}, p_hybrid_vs_xy=0.40,
                       spec={"train_data": "mlqa-r+mintaka"})
    rows = robustness_rows([a, b])
    assert [(r["bundle"], r["best"], r["runner_up"], r["detectable"]) for r in rows] == [
        ("a", "hybrid", "x-y", True), ("b", "x-y", "hybrid", False)]
    assert rows[0]["margin"] == pytest.approx(0.02) and rows[1]["margin"] == pytest.approx(0.01)
    assert rows[0]["ranking"] == ["hybrid", "x-y", "x-x-mono"]
    assert setup_of(b)["train_data"] == "mlqa-r+mintaka" and setup_of(a)["seeds"] == 3
    # b does not detect a winner and hybrid is not last there: no contradiction
    assert disagreements(rows) == []


def test_disagreements_name_different_winners_and_a_winner_ranked_last(tmp_path):
    a = planted_bundle(tmp_path, "a", {"x-x-mono": 0.50, "x-y": 0.55, "hybrid": 0.57}, p_hybrid_vs_xy=0.01)
    b = planted_bundle(tmp_path, "b", {"x-x-mono": 0.50, "x-y": 0.58, "hybrid": 0.55}, p_hybrid_vs_xy=0.01)
    found = disagreements(robustness_rows([a, b]))
    assert len(found) == 1 and "different winners" in found[0] and "hybrid in a" in found[0] and "x-y in b" in found[0]
    c = planted_bundle(tmp_path, "c", {"x-x-mono": 0.58, "x-y": 0.59, "hybrid": 0.50}, p_hybrid_vs_xy=0.30)
    found = disagreements(robustness_rows([a, c]))
    assert len(found) == 1 and "ranks last among the samplers in c" in found[0]


@pytest.mark.slow
def test_a_continued_bundle_keeps_its_precisions_and_names_conflicts(tmp_path):
    from dataclasses import asdict

    from hybridviz.experiments.grid import GridSpec, inherited_settings, spec_conflicts

    (tmp_path / "manifest.json").write_text(json.dumps({"spec": {"precision": "bf16", "steps": 100}}))
    # written before train_precision existed: trained in bf16
    assert inherited_settings(tmp_path) == {"precision": "bf16", "train_precision": "bf16"}
    assert inherited_settings(tmp_path / "absent") == {}
    spec = GridSpec(**inherited_settings(tmp_path))
    assert spec.train_config("x-y", 0).mixed_precision == "bf16"
    old = {**asdict(spec), "precision": "bf16"}
    conflicts = spec_conflicts(old, asdict(GridSpec(precision="fp32", train_precision="bf16", steps=300)))
    assert conflicts == ["precision: bf16 there, fp32 now", "steps: 100 there, 300 now"]


def test_a_fine_tuned_run_keeps_its_base_models_languages(tmp_path, monkeypatch):
    """mUSE supports no el, hi or vi; a run fine-tuned from it must skip them as the base does, or its figures are
    over another pool than the base's. An evaluation that covered them is stale (redone by --refresh)."""
    from hybridviz.data import paths
    from hybridviz.encoders.muse_import import MUSE_LANGUAGES
    from hybridviz.encoders.registry import declared_languages
    from hybridviz.experiments.grid import evaluated_unsupported_languages, stale

    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path)
    for run_id, base in [("from-muse", "muse"), ("from-me5", "me5-small"), ("of-a-run", "run:from-muse")]:
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "config.json").write_text(json.dumps({"model": base}))
    assert declared_languages("run:from-muse") == MUSE_LANGUAGES == declared_languages("run:of-a-run")
    assert declared_languages("run:from-muse+center") == MUSE_LANGUAGES
    assert declared_languages("run:from-me5") is None and declared_languages("run:missing") is None
    assert {"el", "hi", "vi"}.isdisjoint(MUSE_LANGUAGES)
    provenance = {"code": {"source_sha256": "x"}, "libraries": {"torch": "x"}, "settings": {"max_seq_length": 128}}
    wrong = {"task": "xquad-r", "model": {"spec": "run:from-muse"}, "languages": ["de", "el", "en", "hi"],
             "provenance": provenance}
    assert evaluated_unsupported_languages(wrong) == ["el", "hi"] and stale(wrong)
    right = {**wrong, "languages": ["de", "en"]}
    assert evaluated_unsupported_languages(right) == [] and not stale(right)
    assert not stale({**wrong, "model": {"spec": "run:from-me5"}})  # mE5 declares no limit
    # evaluated from a working tree with uncommitted changes: the hash names code that no commit holds
    dirty = {**right, "provenance": {**provenance, "code": {"source_sha256": "x", "dirty": True}}}
    assert stale(dirty) and not stale({**dirty, "provenance": provenance})


def test_the_robustness_command_prints_each_set_ups_row_and_the_disagreement(tmp_path):
    from hybridviz.cli import robustness_markdown

    a = planted_bundle(tmp_path, "a", {"x-x-mono": 0.50, "x-y": 0.55, "hybrid": 0.57}, p_hybrid_vs_xy=0.01)
    b = planted_bundle(tmp_path, "b", {"x-x-mono": 0.50, "x-y": 0.58, "hybrid": 0.55}, p_hybrid_vs_xy=0.01)
    text = robustness_markdown([a, b])
    rows = [line for line in text.splitlines() if line.startswith("| a |") or line.startswith("| b |")]
    assert len(rows) == 2 and "hybrid ahead of X-Y" in rows[0] and "X-Y ahead of hybrid" in rows[1]
    assert "+0.0200 [+0.0100, +0.0300]" in rows[0]
    assert text.count("set-ups name different winners") == 1
    assert "Only one set-up" in robustness_markdown([a]) and robustness_markdown([]) == ""


def test_a_copy_without_git_names_its_commit_only_while_its_source_matches_the_stamp(tmp_path):
    """A lent GPU machine gets the files without .git: the stamp names the commit, checked by source hash."""
    import shutil

    from hybridviz.provenance import CODE, CODE_STAMP, code_identity, source_hash

    repo = tmp_path / "copy"  # under /tmp: no git repository around it
    shutil.copytree(ROOT / "hybridviz", repo / "hybridviz", ignore=shutil.ignore_patterns("__pycache__"))
    assert code_identity(repo) == {"commit": None, "dirty": None, "source_sha256": CODE["source_sha256"]}
    (repo / CODE_STAMP).write_text(f"{'a' * 40} {source_hash(repo / 'hybridviz')}\n")
    assert code_identity(repo) == {"commit": "a" * 40, "dirty": False, "source_sha256": CODE["source_sha256"],
                                   "from": "code stamp"}
    with open(repo / "hybridviz" / "evaluate.py", "a") as f:  # an edited copy is unknown code, not that commit
        f.write("\n# edited\n")
    edited = code_identity(repo)
    assert edited["commit"] is None and edited["dirty"] is None and edited["source_sha256"] != CODE["source_sha256"]


def test_a_forest_row_reads_better_or_worse_only_after_the_multiplicity_correction(tmp_path):
    """The forest plots (Sampler comparison, Robustness) and `robustness --pair` colour a row by the marks'
    rule: family-adjusted p < .05. x-x-mono -> hybrid is planted with an interval that excludes 0 (+0.07 ± 0.01)
    but adjusted p .5: no reading; x-y -> hybrid at adjusted p .01 reads better, and worse from the other side."""
    from hybridviz.cli import pair_markdown
    from hybridviz.experiments.verdict import ALPHA
    from hybridviz.viz.comparison import forest_frame, setup_forest_frame

    a = planted_bundle(tmp_path, "a", {"x-x-mono": 0.50, "x-y": 0.55, "hybrid": 0.57}, p_hybrid_vs_xy=0.01)
    row = forest_frame(a.summary, "x-x-mono", "hybrid", "mAP", ALPHA).iloc[0]
    assert row["ci_low"] > 0 and row["reading"] == "no detectable difference"
    assert forest_frame(a.summary, "x-y", "hybrid", "mAP", ALPHA).iloc[0]["reading"] == "better"
    flipped = forest_frame(a.summary, "hybrid", "x-y", "mAP", ALPHA).iloc[0]
    assert flipped["reading"] == "worse" and flipped["delta"] == pytest.approx(-0.02)
    assert (flipped["ci_low"], flipped["ci_high"]) == pytest.approx((-0.03, -0.01))

    b = planted_bundle(tmp_path, "b", {"x-x-mono": 0.50, "x-y": 0.58, "hybrid": 0.55}, p_hybrid_vs_xy=0.01,
                       spec={"model": "me5-small", "batch_size": 32})
    frame = setup_forest_frame([a, b], "x-y", "hybrid", "mAP", ALPHA, "xquad-r", "multi")
    assert list(frame["reading"]) == ["better", "worse"]
    text = pair_markdown([a, b], "x-y", "hybrid", "mAP")
    lines = [line for line in text.splitlines() if line.startswith("| a:") or line.startswith("| b:")]
    assert len(lines) == 2 and "me5-small · mlqa-r · batch 32" in lines[1]
    assert "+0.0200 | [+0.0100, +0.0300] | 0.01 (holm (primary)) | 9/9 run pairs | hybrid better |  |" in lines[0]
    assert "-0.0300 | [-0.0400, -0.0200]" in lines[1] and lines[1].endswith("hybrid worse |  |")
    # not significant: the equivalence column says what the comparison shows instead (here, outside ±0.01)
    row = forest_frame(a.summary, "x-x-mono", "hybrid", "mAP", ALPHA).iloc[0]
    assert row["equivalence"] == "not equivalent within ±0.0100"
    assert pair_markdown([a], "x-y", "lir", "mAP") == ""


def test_a_verdict_that_changes_between_100_steps_and_convergence_is_named():
    from hybridviz.experiments.robustness import budget_changes

    def row(bundle, early, detectable, best, verdict, setting="multi"):
        return {"bundle": bundle, "model": "me5-small", "train_data": "mlqa-r", "batch_size": 32, "steps": 100 if
                not early else 1500, "early_stopped": early, "task": "xquad-r", "setting": setting,
                "metric": "mAP", "detectable": detectable, "best": best, "verdict": verdict}

    rows = [row("grid", False, True, "hybrid", "better"), row("converged", True, False, "x-y", "undetermined"),
            row("grid", False, False, "x-y", "equivalent", "mono"), row("converged", True, False, "x-y",
                                                                          "equivalent", "mono")]
    changes = budget_changes(rows)
    assert len(changes) == 1 and changes[0].startswith("xquad-r · multi mAP: at 100 steps (grid) hybrid better")
    assert "converged (converged) undetermined" in changes[0]
    other = [dict(r, model="muse") if r["bundle"] == "converged" else r for r in rows]
    assert budget_changes(other) == [], "only twins (same encoder, data and batch) are compared"


# ------------------------------------------------------------------------------------------------ learning curves


def _records(bundle_path: Path) -> dict:
    """The planted bundle's training records read straight from its files: label -> {"status", "probes",
    "validation": {step: the step's last record}} (a resumed run validates a step again; the later one counts)."""
    out = {}
    for folder in sorted((bundle_path / "models").glob("*/training")):
        lines = lambda name: [json.loads(x) for x in (folder / name).read_text().splitlines() if x]  # noqa: E731
        out[folder.parent.name] = {"status": json.loads((folder / "status.json").read_text()),
                                   "validation": {r["step"]: r for r in lines("validation.jsonl")},
                                   "probes": lines("probes.jsonl")}
    return out


def test_an_early_stopped_bundles_curves_are_its_units_training_records(tmp_path):
    import numpy as np

    from conftest import CONVERGED_STOPS, write_converged_bundle
    from hybridviz.experiments.bundle import load_bundle
    from hybridviz.experiments.curves import bundle_curves, curve_frame, probe_summary, seed_coverage, summary_rows

    path = write_converged_bundle(tmp_path)
    state = bundle_curves(path)
    labels = [f"{s}-s{i}" for s in CONVERGED_STOPS for i in range(3)]
    assert list(state["runs"]) == labels, "the base, the alpha point and the method's unit are not runs"
    assert bundle_curves(load_bundle(path)) == state
    assert state["regime"] == {"max_steps": 400, "eval_steps": 50, "patience": 2, "warmup_steps": 50,
                               "probe_steps": [100, 300], "holdout": 0.2, "criterion": "mean_mAP",
                               "pool": "paragraphs"}
    assert state["config"]["batch_size"] == 16 and state["bundle"] == path.name
    files = _records(path)

    # every (run, validation step) with its figures, against the files
    frame = curve_frame(state).sort_values(["sampler", "seed", "step"]).reset_index(drop=True)
    expected = [(label.rsplit("-s", 1)[0], int(label.rsplit("-s", 1)[1]), step, r["mono_mAP"], r["cross_mAP"],
                 r["multi_mAP"], r["mean_mAP"], step == files[label]["status"]["best_step"])
                for label in labels for step, r in sorted(files[label]["validation"].items())]
    got = list(frame[["sampler", "seed", "step", "mono_mAP", "cross_mAP", "multi_mAP", "mean_mAP", "best"]]
               .itertuples(index=False, name=None))
    assert sorted(got) == sorted(expected)
    assert frame.loc[(frame["sampler"] == "x-y") & (frame["seed"] == 1) & (frame["step"] == 100),
                     "multi_mAP"].item() != 0.01, "the resumed run's later validation counts"

    # per sampler: seeds, best and stop steps as the status files say, held-out mAP at best = mean over seeds
    rows = {r["sampler"]: r for r in summary_rows(state)}
    assert list(rows) == list(CONVERGED_STOPS)
    for sampler, stops in CONVERGED_STOPS.items():
        mine = [files[f"{sampler}-s{i}"] for i in range(3)]
        assert rows[sampler]["seeds"] == 3
        assert rows[sampler]["stopped at"] == ", ".join(str(s) for s in stops)
        assert rows[sampler]["best steps"] == ", ".join(str(m["status"]["best_step"]) for m in mine)
        for setting in ("mono", "cross", "multi"):
            at_best = [m["validation"][m["status"]["best_step"]][f"{setting}_mAP"] for m in mine]
            assert rows[sampler][f"{setting} mAP at best"] == pytest.approx(np.mean(at_best))
        assert rows[sampler]["step s"] == pytest.approx(1.5)

    # the XQuAD-R sample at each probe over the seeds that reached it (stops before 300 have no probe there)
    probes = {(r["sampler"], r["at"]): r for r in probe_summary(state)}
    for sampler, stops in CONVERGED_STOPS.items():
        for at, key in (("step 100", 100), ("step 300", 300), ("best checkpoint", "best")):
            reached = [files[f"{sampler}-s{i}"] for i in range(3) if key == "best" or stops[i] >= key]
            values = [next(p for p in m["probes"] if p["step"] == key)["multi_mAP"] for m in reached]
            if not values:
                assert (sampler, at) not in probes
                continue
            row = probes[(sampler, at)]
            assert row["seeds"] == len(values)
            assert (row["multi mAP"], row["multi min"], row["multi max"]) == pytest.approx(
                (np.mean(values), min(values), max(values)))
    assert probes[("x-x-mono", "step 300")]["seeds"] == 1 and ("hybrid", "step 300") in probes

    # how far every seed, and two or more, reached
    assert seed_coverage(curve_frame(state)) == [
        {"sampler": "x-x-mono", "seeds": 3, "all seeds to": 200, "2+ seeds to": 250, "last step": 300},
        {"sampler": "x-y", "seeds": 3, "all seeds to": 300, "2+ seeds to": 300, "last step": 400},
        {"sampler": "hybrid", "seeds": 3, "all seeds to": 150, "2+ seeds to": 250, "last step": 350}]


def test_a_bundle_without_early_stopping_has_no_curves_and_a_damaged_record_is_named(tmp_path):
    from conftest import write_converged_bundle
    from hybridviz.experiments.bundle import BundleError
    from hybridviz.experiments.curves import bundle_curves

    assert bundle_curves(write_converged_bundle(tmp_path, "fixed", early_stopping=False)) is None
    assert bundle_curves(tmp_path / "nowhere") is None
    path = write_converged_bundle(tmp_path, "damaged")
    (path / "models" / "x-y-s2" / "training" / "status.json").write_text("{not json")
    with pytest.raises(BundleError, match="x-y-s2/training/status.json"):
        bundle_curves(path)


def _band_traces(fig, sampler: str, axis: str) -> dict:
    from hybridviz.viz.style import group_label

    mine = [t for t in fig.data if t.legendgroup == sampler and (t.xaxis or "x") == axis]
    lines = [t for t in mine if t.fill is None and t.mode == "lines+markers"]
    assert all(t.name == group_label(sampler) for t in lines)
    return {"band": [t for t in mine if t.fill == "toself"],
            "solid": [t for t in lines if t.line.dash == "solid"],
            "dashed": [t for t in lines if t.line.dash == "dash"]}


def test_the_band_is_over_seeds_and_ends_where_fewer_than_two_remain(tmp_path):
    """Against the files: per step the mean, min and max over the seeds that reached it. The band (min to max)
    spans only the steps two or more seeds reached; the line is solid while every seed runs, dashed after."""
    import numpy as np

    from conftest import CONVERGED_STOPS, write_converged_bundle
    from hybridviz.experiments.curves import bundle_curves, curve_frame
    from hybridviz.viz.comparison import learning_curve_bands

    path = write_converged_bundle(tmp_path)
    files = _records(path)
    frame = curve_frame(bundle_curves(path))
    fig = learning_curve_bands(frame, "planted")
    assert "band only where 2 or more remain" in fig.layout.title.text
    for axis, setting in (("x", "mono"), ("x2", "cross"), ("x3", "multi")):
        for sampler, stops in CONVERGED_STOPS.items():
            per_step: dict = {}
            for i in range(3):
                for step, r in files[f"{sampler}-s{i}"]["validation"].items():
                    per_step.setdefault(step, []).append(r[f"{setting}_mAP"])
            steps = sorted(per_step)
            traces = _band_traces(fig, sampler, axis)
            assert len(traces["band"]) == 1
            banded = [s for s in steps if len(per_step[s]) >= 2]
            assert banded[-1] == sorted(stops)[1] < steps[-1], "the band ends at the second-latest stop"
            band = traces["band"][0]
            assert list(band.x) == banded + banded[::-1]
            assert list(band.y) == pytest.approx([max(per_step[s]) for s in banded]
                                                 + [min(per_step[s]) for s in banded[::-1]])
            assert len(traces["solid"]) == 1 and len(traces["dashed"]) == 1
            means = {s: float(np.mean(per_step[s])) for s in steps}
            solid = dict(zip(traces["solid"][0].x, traces["solid"][0].y))
            assert [s for s in steps if solid[s] is not None] == [s for s in steps if s <= min(stops)]
            assert [solid[s] for s in steps if s <= min(stops)] == pytest.approx([means[s] for s in steps
                                                                                  if s <= min(stops)])
            dashed = dict(zip(traces["dashed"][0].x, traces["dashed"][0].y))
            tail = [s for s in steps if s >= min(stops)]  # from the last step every seed reached
            assert [s for s in steps if dashed[s] is not None] == tail
            assert [dashed[s] for s in tail] == pytest.approx([means[s] for s in tail])
            assert list(traces["dashed"][0].customdata[:, 2]) == [len(per_step[s]) for s in steps]

    one = learning_curve_bands(frame[frame["seed"] == 0])  # one seed: a curve, no band, nothing dashed
    for sampler in CONVERGED_STOPS:
        traces = _band_traces(one, sampler, "x3")
        assert not traces["band"] and not traces["dashed"] and len(traces["solid"]) == 1
    assert "band only" not in one.layout.title.text


def test_the_machine_record_names_the_threads_a_result_was_computed_with():
    """Timings are read against the threads: torch's own count once torch is imported, else OMP_NUM_THREADS."""
    import os
    import subprocess
    import sys

    probe = ("import json, torch; torch.set_num_threads(1); from hybridviz.provenance import machine; "
             "print(json.dumps(machine()))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert json.loads(done.stdout)["threads"] == 1, done.stderr
    for env, expected in (("3", 3), ("many", None)):
        probe = ("import json; from hybridviz.provenance import machine; import sys; "
                 "assert 'torch' not in sys.modules; print(json.dumps(machine()))")
        done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": env})
        assert json.loads(done.stdout).get("threads") == expected, done.stderr


def test_the_robustness_command_names_a_verdict_that_changes_with_the_budget(tmp_path):
    from hybridviz.cli import robustness_markdown

    short = planted_bundle(tmp_path, "short", {"x-x-mono": 0.50, "x-y": 0.55, "hybrid": 0.57}, p_hybrid_vs_xy=0.01)
    converged = planted_bundle(tmp_path, "converged", {"x-x-mono": 0.50, "x-y": 0.55, "hybrid": 0.57},
                               p_hybrid_vs_xy=0.40, spec={"steps": 600, "train_extra": {"eval_steps": 25}})
    text = robustness_markdown([short, converged])
    assert "The verdict changes with the training budget:" in text
    assert "xquad-r · multi mAP: at 200 steps (short) hybrid better (best hybrid); converged (converged)" in text
    other = planted_bundle(tmp_path, "other", {"x-x-mono": 0.50, "x-y": 0.55, "hybrid": 0.57}, p_hybrid_vs_xy=0.40,
                           spec={"steps": 600, "train_extra": {"eval_steps": 25}, "batch_size": 32})
    assert "changes with the training budget" not in robustness_markdown([short, other])  # not twins
