"""Issue #31's five questions (`experiments/answers.py`, `python -m hybridviz answers`): each short answer tallies
the planted run-level comparisons of a converged bundle, each line carries that comparison's own interval, and
the budget question names exactly the cells whose verdict differs from the 100-step twin."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from hybridviz.experiments.bundle import Bundle
from hybridviz.experiments.stats import verdict_of

GROUPS = ("base", "x-x-mono", "x-y", "hybrid")
MEANS = {"base": 0.40, "x-x-mono": 0.50, "x-y": 0.53, "hybrid": 0.54}  # each cell's verdict: hybrid vs X-Y


def _test(task, setting, metric, a, b, delta, half, p, p_tost, margin=0.01, n_a=5, n_b=5):
    """One stored run-level test of b − a: interval delta ± half, the marks' adjusted p and the TOST's."""
    low, high = delta - half, delta + half
    return {"task": task, "setting": setting, "metric": metric, "a": a, "b": b, "delta": delta, "ci_low": low,
            "ci_high": high, "p_adjusted": p, "p_tost_adjusted": p_tost, "correction": "holm (primary)",
            "family": "primary", "pairs_agree": 20, "n_pairs": 25, "margin": margin, "mde": 0.012,
            "mde_family": 0.016, "n_a": n_a, "n_b": n_b,
            "verdict": verdict_of(p, p_tost, delta, low, high, margin, metric)}


def planted(root: Path, name: str, tests: list[dict], spec: dict) -> Bundle:
    path = root / name
    path.mkdir(parents=True)
    tasks = sorted({t["task"] for t in tests})
    cells = [{"task": t, "setting": s, "metric": m, "group": g, "mean": MEANS[g], "std": 0.01, "n": 5}
             for t in tasks for s, m in {(x["setting"], x["metric"]) for x in tests if x["task"] == t}
             for g in GROUPS]
    (path / "summary.json").write_text(json.dumps({"version": 3, "cells": cells, "tests": tests}))
    manifest = {"spec": {"model": "me5-small", "train_data": "mlqa-r", "batch_size": 32, "seeds": [0, 1, 2, 3, 4],
                         **spec}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return Bundle(path, manifest, [SimpleNamespace(group=g, task=t) for g in GROUPS for t in tasks])


CONVERGED = {"steps": 1000, "train_extra": {"eval_steps": 50, "patience": 4}}
SHORT = {"steps": 100}


def converged_tests() -> list[dict]:
    return [
        # hybrid ahead of X-X-mono on XQuAD-R multilingual mAP; open on MKQA queries
        _test("xquad-r", "multi", "mAP", "x-x-mono", "hybrid", 0.030, 0.010, 0.004, 0.9),
        _test("mkqa-queries", "multi", "mAP", "x-x-mono", "hybrid", 0.004, 0.020, 0.60, 0.40),
        # hybrid and X-Y: equivalent within ±.01 on XQuAD-R; X-Y ahead on MKQA queries (stored as hybrid − x-y < 0)
        _test("xquad-r", "multi", "mAP", "x-y", "hybrid", 0.001, 0.004, 0.80, 0.003),
        _test("mkqa-queries", "multi", "mAP", "x-y", "hybrid", -0.020, 0.008, 0.01, 0.9),
        # fine-tuning costs XQuAD-R monolingual mAP for every sampler (one-run base, t only)
        *[_test("xquad-r", "mono", "mAP", "base", s, -0.03, 0.01, 0.002, 0.9, n_a=1) for s in ("x-x-mono", "x-y",
                                                                                                  "hybrid")],
    ]


def test_each_answer_tallies_the_planted_comparisons_with_their_intervals(tmp_path):
    from hybridviz.experiments.answers import QUESTIONS, convergence_answers

    bundle = planted(tmp_path, "converged", converged_tests(), CONVERGED)
    answers = {a["key"]: a for a in convergence_answers(bundle)}
    assert list(answers) == list(QUESTIONS) and all(a["question"] == QUESTIONS[k] for k, a in answers.items())
    assert answers["ahead"]["answer"] == ("hybrid against X-X-mono on multilingual mAP — XQuAD-R: ahead; MKQA "
                                          "queries: undetermined")
    ahead = answers["ahead"]["lines"]
    assert len(ahead) == 2 and ahead[0].startswith("XQuAD-R · multilingual mAP: hybrid is better than x-x-mono")
    assert "+0.0300 (95 % CI +0.0200 to +0.0400; adjusted p = 0.004, holm (primary); 20 of 25 run pairs" in ahead[0]
    assert answers["x-y"]["answer"] == ("hybrid against X-Y on multilingual mAP — XQuAD-R: equivalent within ±m; "
                                        "MKQA queries: behind")
    # read from hybrid's side: the stored Δ (hybrid − X-Y) keeps its sign, its interval too
    assert "hybrid is worse than x-y; Δ -0.0200 (95 % CI -0.0280 to -0.0120" in answers["x-y"]["lines"][1]
    assert "equivalent within ±0.0100" in answers["x-y"]["lines"][0] and "TOST adjusted p = 0.003" in \
        answers["x-y"]["lines"][0]
    assert answers["mono"]["answer"].endswith("XQuAD-R: 3 samplers below the base (a cost)")
    # a detectable difference that the TOST also places within ±m says so in the tally
    within = converged_tests()
    within[0] = _test("xquad-r", "multi", "mAP", "x-x-mono", "hybrid", 0.003, 0.002, 0.004, 0.001)
    tally = convergence_answers(planted(tmp_path, "within", within, CONVERGED))[0]["answer"]
    assert "XQuAD-R: ahead (by less than ±m: TOST); MKQA queries: undetermined" in tally
    assert len(answers["mono"]["lines"]) == 3
    # the MKQA sentence: XQuAD-R better vs MKQA undetermined (open), equivalent vs worse (disagree)
    assert answers["mkqa"]["answer"] == "No"
    assert "disagrees in 1" in answers["mkqa"]["lines"][0] and "leaves 1 open" in answers["mkqa"]["lines"][0]
    assert answers["budget"]["answer"].startswith("no 100-step twin")


def test_the_budget_answer_names_the_cells_that_changed_against_the_twin_only(tmp_path):
    from hybridviz.experiments.answers import convergence_answers, counterparts
    from hybridviz.experiments.bundle import find_bundles

    converged = planted(tmp_path, "converged", converged_tests(), CONVERGED)
    short_tests = converged_tests()
    short_tests[0] = _test("xquad-r", "multi", "mAP", "x-x-mono", "hybrid", 0.030, 0.010, 0.004, 0.9)  # same
    short_tests[2] = _test("xquad-r", "multi", "mAP", "x-y", "hybrid", 0.015, 0.004, 0.01, 0.9)  # hybrid ahead
    twin = planted(tmp_path, "grid", short_tests, SHORT)
    planted(tmp_path, "other-encoder", short_tests, {**SHORT, "model": "muse"})
    planted(tmp_path, "other-converged", converged_tests(), CONVERGED)
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "manifest.json").write_text("{not json")
    folders = find_bundles(tmp_path) + [tmp_path / "damaged"]
    assert [p.name for p in counterparts(converged, folders)] == ["grid"]
    assert [p.name for p in counterparts(twin, folders)] == ["converged", "other-converged"]
    budget = convergence_answers(converged, [twin])[-1]
    assert budget["answer"].startswith("1 change over ")
    assert len(budget["lines"]) == 1 and budget["lines"][0].startswith(
        "xquad-r · multi mAP: at 100 steps (grid) hybrid better")
    same = convergence_answers(converged, [planted(tmp_path, "grid-same", converged_tests(), SHORT)])[-1]
    assert same["answer"].startswith("0 changes") and "No verdict changes" in same["lines"][0]


def test_the_answers_command_prints_the_five_questions(tmp_path, capsys, monkeypatch):
    from hybridviz.cli import main
    from hybridviz.experiments import bundle as bundle_module

    converged = planted(tmp_path, "converged", converged_tests(), CONVERGED)
    twin = planted(tmp_path, "grid", converged_tests(), SHORT)
    made = {b.path: b for b in (converged, twin)}  # the planted bundles hold no per-model files to load
    monkeypatch.setattr(bundle_module, "load_bundle",
                        lambda p: made.get(Path(p)) or planted_stale(tmp_path / Path(p).name))
    assert main(["answers", str(converged.path), "--twins", str(twin.path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("## converged: the converged regime's questions")
    assert [line[:3] for line in text.splitlines() if line[:1].isdigit()] == ["1. ", "2. ", "3. ", "4. ", "5. "]
    assert "against grid" in text and "95 % CI +0.0200 to +0.0400" in text
    assert main(["answers", str(tmp_path / "stale"), "--twins"]) == 0  # no twins named: none looked for
    assert "predates the current statistics" in capsys.readouterr().out


def planted_stale(path: Path) -> Bundle:
    """A converged bundle whose summary predates the current statistics."""
    bundle = planted(path.parent, path.name, converged_tests(), CONVERGED)
    (path / "summary.json").write_text(json.dumps({"version": 1, "cells": [], "tests": []}))
    return bundle


@pytest.mark.slow
def test_the_overview_answers_on_a_converged_bundle_and_points_a_short_one_to_it(tiny_grid, monkeypatch, tmp_path):
    """The tiny grid twice under one reference folder: as itself (100 steps) and as an early-stopped copy. The
    Overview opens on the converged one (OPENING_BUNDLES) with the five questions; the short one points to it."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from hybridviz.data import paths
    from hybridviz.experiments import bundle as bundle_module
    from hybridviz.experiments.answers import convergence_answers
    from hybridviz.experiments.bundle import load_bundle

    out, *_ = tiny_grid
    reference = tmp_path / "reference"
    shutil.copytree(out, reference / "short")
    shutil.copytree(out, reference / "converged-tiny")
    manifest = json.loads((reference / "converged-tiny" / "manifest.json").read_text())
    manifest["spec"]["train_extra"] = {"eval_steps": 50, "patience": 4}
    (reference / "converged-tiny" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(bundle_module, "REFERENCE_DIR", reference)
    monkeypatch.setattr(paths, "OPENING_BUNDLES", ("converged-tiny", paths.MAIN_BUNDLE))
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=240).run()
    assert not at.exception
    expected = convergence_answers(load_bundle(reference / "converged-tiny"), [load_bundle(reference / "short")])
    shown = next(m.value for m in at.markdown if m.value.startswith("**The converged regime's questions**"))
    for i, a in enumerate(expected, 1):
        assert f"{i}. {a['question']} **{a['answer']}.**" in shown
    trained = next(m.value for m in at.markdown if m.value.startswith("**What was trained on what.**"))
    assert "up to 3 steps of batch 8" in trained and "(early-stopped: above)" in trained
    folded = next(e for e in at.expander if e.label.startswith("The comparisons behind each answer"))
    assert " ".join(m.value for m in folded.markdown).count("95 % CI") == sum(
        " ".join(a["lines"]).count("95 % CI") for a in expected) > 0

    at = AppTest.from_file(app, default_timeout=240)
    at.query_params["bundle"] = "short"
    at.run()
    assert not at.exception
    pointer = [i.value for i in at.info if i.value.startswith("**Trained to convergence:**")]
    assert pointer and "[converged-tiny](?bundle=converged-tiny)" in pointer[0]
    assert "Every verdict cell reads the same there." in pointer[0]  # the same runs: nothing changes
    assert not any(m.value.startswith("**The converged regime's questions**") for m in at.markdown)
    trained = next(m.value for m in at.markdown if m.value.startswith("**What was trained on what.**"))
    assert "up to" not in trained and "early-stopped" not in trained
