"""The Overview's picture and sentence (issue #33 item 5): the figure draws exactly the committed summary's hybrid
comparisons (deltas, intervals, margins, read here straight from summary.json), coloured by their verdicts; the
sentence's logic on planted summaries (agree / disagree / open / missing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridviz.experiments.effects import effects_missing, follows_reference, follows_sentence, hybrid_effects
from hybridviz.viz.effects import effect_frame, hybrid_effect_figure
from hybridviz.viz.style import VERDICT_COLORS

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "cache" / "reference" / "sampler-grid" / "summary.json"
TASKS = ("xquad-r", "mkqa-queries", "mkqa-answers", "mkqa-mteb")
CELLS = {("mono", "mAP"), ("cross", "mAP"), ("multi", "mAP"), ("multi", "max_rank_distance")}


def oracle(summary: dict) -> dict:
    """(task, setting, metric, comparator) -> the stored test of hybrid against it, read directly: the committed
    bundle stores every such test as a = comparator, b = hybrid, so delta, interval and verdict are hybrid's."""
    out = {}
    for t in summary["tests"]:
        if t["b"] == "hybrid" and t["a"] in ("x-x-mono", "x-y") and t["task"] in TASKS \
                and (t["setting"], t["metric"]) in CELLS:
            out[(t["task"], t["setting"], t["metric"], t["a"])] = t
    return out


def data_traces(fig):
    """The traces that draw effects (the legend's entries have one point at None)."""
    return [tr for tr in fig.data if tr.x is not None and len(tr.x) and tr.x[0] is not None]


@pytest.fixture(scope="module")
def reference():
    summary = json.loads(REFERENCE.read_text())
    effects = hybrid_effects(summary)
    frame = effect_frame(effects)
    return summary, effects, frame, hybrid_effect_figure(frame)


def test_the_figure_draws_the_summarys_deltas_and_intervals(reference):
    summary, effects, frame, fig = reference
    expected = oracle(summary)
    assert len(expected) == 24 and len(frame) == 24  # 4 benchmarks' cells x 2 comparators, every one drawn
    for _, row in frame.iterrows():
        t = expected[(row["task"], row["setting"], row["metric"], row["comparator"])]
        assert (row["delta"], row["ci_low"], row["ci_high"]) == (t["delta"], t["ci_low"], t["ci_high"])
        assert row["equivalence_margin"] == t["margin"]
        turn = -1 if row["metric"] == "max_rank_distance" else 1  # lower rank distance is better
        assert row["effect"] == pytest.approx(turn * t["delta"] / t["margin"])
        low, high = sorted((turn * t["ci_low"] / t["margin"], turn * t["ci_high"] / t["margin"]))
        assert (row["effect_low"], row["effect_high"]) == (pytest.approx(low), pytest.approx(high))
    # what is drawn: each point's x, its error bar's ends and its raw figures (customdata) are the summary's
    drawn = 0
    for col, comparator in ((1, "x-x-mono"), (2, "x-y")):
        axis = "x" if col == 1 else "x2"
        for tr in [tr for tr in data_traces(fig) if tr.xaxis == axis]:
            for x, plus, minus, raw in zip(tr.x, tr.error_x.array, tr.error_x.arrayminus, tr.customdata):
                matches = [t for k, t in expected.items() if k[3] == comparator and t["delta"] == raw[0]]
                assert len(matches) == 1
                t = matches[0]
                assert (raw[1], raw[2], raw[3]) == (t["ci_low"], t["ci_high"], t["margin"])
                turn = -1 if t["metric"] == "max_rank_distance" else 1
                assert x == pytest.approx(turn * t["delta"] / t["margin"])
                ends = sorted((turn * t["ci_low"] / t["margin"], turn * t["ci_high"] / t["margin"]))
                assert (x - minus, x + plus) == (pytest.approx(ends[0]), pytest.approx(ends[1]))
                drawn += 1
    assert drawn == 24


def test_the_colours_follow_the_verdicts(reference):
    summary, effects, frame, fig = reference
    expected = oracle(summary)
    alpha = summary["plan"].get("alpha", 0.05)
    for tr in data_traces(fig):
        comparator = "x-x-mono" if tr.xaxis == "x" else "x-y"
        for raw, fill in zip(tr.customdata, tr.marker.color):
            t = next(t for k, t in expected.items() if k[3] == comparator and t["delta"] == raw[0])
            assert tr.marker.line.color == tr.error_x.color == VERDICT_COLORS[t["verdict"]]
            small = t["verdict"] in ("better", "worse") and t["p_tost_adjusted"] < alpha
            assert fill == ("white" if small else VERDICT_COLORS[t["verdict"]])  # hollow: detectable, within ±m
    legend = {tr.name: tr.marker.color for tr in fig.data if tr.showlegend is not False and tr.x[0] is None}
    assert {"hybrid better (significant)", "hybrid worse (significant)", "equivalent within ±m (TOST)",
            "undetermined"} <= set(legend)
    assert legend["hybrid worse (significant)"] == VERDICT_COLORS["worse"]
    # XQuAD-R is labelled beside the MKQA protocols in every cell it measures
    labels = list(fig.layout.yaxis.ticktext)
    assert sum("XQuAD-R" in label for label in labels) == 4 and "MKQA · MTEB" in labels


def test_the_sentence_on_the_reference_bundle_against_an_independent_count(reference):
    summary, effects, frame, fig = reference
    expected = oracle(summary)
    decided = {"better", "worse", "equivalent"}
    counts = {"agree": 0, "disagree": 0, "open": 0}
    for (task, setting, metric, comparator), t in expected.items():
        ref = expected.get(("xquad-r", setting, metric, comparator))
        if task == "xquad-r" or ref is None:
            continue
        a, b = ref["verdict"], t["verdict"]
        counts["open" if a not in decided or b not in decided else "agree" if a == b else "disagree"] += 1
    result = follows_reference(effects)
    assert {k: result[k] for k in counts} == counts == {"agree": 4, "disagree": 3, "open": 9}
    sentence = follows_sentence(result, effects)
    assert sentence.startswith("Does MKQA follow XQuAD-R? Partly: of the 16 hybrid comparisons")
    assert "hybrid better than X-X-mono on multilingual mAP and multilingual max rank distance" in sentence
    assert "multilingual max rank distance against X-Y: equivalent on XQuAD-R, worse on MKQA answers" in sentence


# ------------------------------------------------------------------------------------------ planted summaries


def planted(verdicts: dict, groups=("base", "x-x-mono", "x-y", "hybrid"), reverse: bool = False) -> dict:
    """A current summary whose hybrid tests carry the given verdicts: {(task, setting, metric, comparator):
    verdict}. Δ follows the verdict's sign; `reverse` stores each test the other way round (a = hybrid)."""
    tests, tasks = [], set()
    for (task, setting, metric, comparator), verdict in verdicts.items():
        tasks.add(task)
        delta = {"better": 0.03, "worse": -0.03, "not equivalent": 0.03}.get(verdict, 0.001)
        t = {"task": task, "setting": setting, "metric": metric, "a": comparator, "b": "hybrid", "delta": delta,
             "ci_low": delta - 0.005, "ci_high": delta + 0.005, "margin": 0.01, "verdict": verdict,
             "p_adjusted": 0.01 if verdict in ("better", "worse") else 0.5, "correction": "holm (primary)",
             "pairs_agree": 9, "n_pairs": 9, "mde": 0.01, "p_tost_adjusted": 0.01 if verdict == "equivalent"
             else 0.9, "n_a": 3, "n_b": 3, "family": "primary"}
        if reverse:
            flip = {"better": "worse", "worse": "better"}
            t = {**t, "a": "hybrid", "b": comparator, "delta": -delta, "ci_low": -t["ci_high"],
                 "ci_high": -t["ci_low"], "verdict": flip.get(verdict, verdict)}
        tests.append(t)
    cells = [{"task": task, "setting": "multi", "metric": "mAP", "group": g, "mean": 0.5} for task in tasks
             for g in groups]
    return {"version": 3, "cells": cells, "tests": tests}


def answer(verdicts: dict, **kw) -> tuple[dict, str]:
    effects = hybrid_effects(planted(verdicts, **kw))
    result = follows_reference(effects)
    return result, follows_sentence(result, effects)


def test_the_sentence_agrees_disagrees_or_stays_open():
    xq, mq = ("xquad-r", "multi", "mAP", "x-x-mono"), ("mkqa-queries", "multi", "mAP", "x-x-mono")
    result, text = answer({xq: "better", mq: "better"})
    assert result["answer"] == "yes" and text.startswith("Does MKQA follow XQuAD-R? Yes:")
    assert "agrees with it in 1 (hybrid better than X-X-mono on multilingual mAP in MKQA queries)" in text
    result, text = answer({xq: "better", mq: "worse"})
    assert result["answer"] == "no" and text.startswith("Does MKQA follow XQuAD-R? No:")
    assert "disagrees in 1 (multilingual mAP against X-X-mono: better on XQuAD-R, worse on MKQA queries)" in text
    result, text = answer({xq: "equivalent", mq: "better"})  # equivalent is decided: a disagreement
    assert result["answer"] == "no"
    for open_pair in (("undetermined", "better"), ("better", "undetermined"), ("not equivalent", "better")):
        result, text = answer({xq: open_pair[0], mq: open_pair[1]})
        assert result["answer"] == "undetermined" and result["open"] == 1
        assert text.startswith("Does MKQA follow XQuAD-R? Undetermined:") and "leaves 1 open" in text
    xy = ("xquad-r", "multi", "mAP", "x-y")
    result, text = answer({xq: "better", mq: "better", xy: "equivalent",
                           ("mkqa-answers", "multi", "mAP", "x-y"): "worse",
                           ("mkqa-answers", "multi", "mAP", "x-x-mono"): "undetermined"})
    assert (result["answer"], result["agree"], result["disagree"], result["open"]) == ("partly", 1, 1, 1)
    result, text = answer({xq: "better", mq: "better", ("mkqa-answers", "multi", "mAP", "x-x-mono"): "undetermined"})
    assert result["answer"] == "yes where decided" and text.startswith("Does MKQA follow XQuAD-R? Yes, where both")


def test_a_test_stored_the_other_way_round_is_read_from_hybrids_side():
    xq, mq = ("xquad-r", "multi", "mAP", "x-x-mono"), ("mkqa-queries", "multi", "mAP", "x-y")
    plain = hybrid_effects(planted({xq: "better", mq: "worse"}))
    turned = hybrid_effects(planted({xq: "better", mq: "worse"}, reverse=True))
    for a, b in zip(plain, turned):
        assert b["verdict"] == a["verdict"]
        assert (b["delta"], b["ci_low"], b["ci_high"]) == pytest.approx((a["delta"], a["ci_low"], a["ci_high"]))
        assert b["effect"] == pytest.approx(a["effect"])
    assert [e["verdict"] for e in turned] == ["better", "worse"] and turned[1]["effect"] < 0


def test_what_is_missing_is_said_and_the_rest_drawn():
    xq = ("xquad-r", "multi", "mAP", "x-x-mono")
    # no MKQA: nothing to compare, and the sentence says why
    effects = hybrid_effects(planted({xq: "better"}))
    assert "no hybrid effect on an MKQA protocol" in follows_sentence(follows_reference(effects), effects)
    summary = planted({("mkqa-answers", "multi", "mAP", "x-x-mono"): "better"}, groups=("x-x-mono", "hybrid"))
    effects = hybrid_effects(summary)
    assert "no hybrid effect on XQuAD-R" in follows_sentence(follows_reference(effects), effects)
    missing = effects_missing(summary, effects)
    assert "no runs of X-Y in this bundle" in missing
    assert any(m.startswith("not evaluated: XQuAD-R") for m in missing)
    assert any("MKQA answers does not measure monolingual mAP" in m for m in missing)
    fig = hybrid_effect_figure(effect_frame(effects))  # one comparator: one panel
    assert [a.text for a in fig.layout.annotations if "hybrid vs" in a.text] == ["<b>hybrid vs X-X-mono</b>"]
    # an older summary: no effects (the page shows the recompute notice instead)
    assert hybrid_effects({**summary, "version": 2}) == []
    # a bundle without hybrid: an empty frame, an empty figure without error
    empty = hybrid_effects(planted({}, groups=("x-x-mono", "x-y")))
    assert empty == [] and effect_frame(empty).empty
    hybrid_effect_figure(effect_frame(empty))
    assert follows_sentence(follows_reference(empty), empty).startswith("Does MKQA follow XQuAD-R? This cannot")


@pytest.mark.parametrize("path", sorted((ROOT / "cache" / "reference").glob("*/summary.json")),
                         ids=lambda p: p.parent.name)
def test_every_bundle_the_selector_offers_draws(path):
    summary = json.loads(path.read_text())
    effects = hybrid_effects(summary)
    frame = effect_frame(effects)
    fig = hybrid_effect_figure(frame)
    assert sum(len(tr.x) for tr in data_traces(fig)) == len(frame) == len(oracle(summary))
    assert follows_sentence(follows_reference(effects), effects).startswith("Does MKQA follow XQuAD-R?")


def test_a_disagreement_whose_detectable_side_lies_within_the_margin_says_so():
    """XQuAD-R: hybrid better, and the TOST also places the difference within ±m; MKQA: equivalent. The
    categories differ (a disagreement), the sizes do not beyond the margin: the sentence says which side."""
    xq, mq = ("xquad-r", "multi", "mAP", "x-x-mono"), ("mkqa-queries", "multi", "mAP", "x-x-mono")
    summary = planted({xq: "better", mq: "equivalent"})
    next(t for t in summary["tests"] if t["task"] == "xquad-r")["p_tost_adjusted"] = 0.01
    effects = hybrid_effects(summary)
    result = follows_reference(effects)
    assert result["answer"] == "no" and result["pairs"][0]["within_margin"] == ["xquad-r"]
    text = follows_sentence(result, effects)
    assert ("in 1 of them the detectable side (XQuAD-R's better in multilingual mAP against X-X-mono) also lies "
            "within the margin ±m by the TOST") in text
    _, plain = answer({xq: "better", mq: "equivalent"})  # the TOST not within ±m: no such note
    assert "disagrees in 1" in plain and "also lies within the margin" not in plain
