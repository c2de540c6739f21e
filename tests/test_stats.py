"""Run-level statistics (hybridviz/experiments/stats.py) against scipy, statsmodels, brute force and simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hybridviz.experiments.stats import (benjamini_hochberg, cluster_matrix, compare_runs, direction, holm, mark,
                                         question_heterogeneity, seed_permutation_p)
from hybridviz.experiments.verdict import verdicts


def _runs(rng, shift, n_runs, questions, seed_sd, noise_sd, langs=("en", "de"), effect=None):
    """Per-run query tables over shared questions: question difficulty + run effect + per-run noise."""
    out, values = [], []
    effect = np.zeros(len(questions)) if effect is None else effect
    for _ in range(n_runs):
        run_shift = shift + rng.normal(0, seed_sd)
        v = questions + effect + run_shift + rng.normal(0, noise_sd, len(questions))
        table = {f"{lang}:{c}": float(v[c] + rng.normal(0, noise_sd / 4)) for c in range(len(questions))
                 for lang in langs}
        out.append(table)
        values.append(float(np.mean(list(table.values()))))
    return out, values


def test_holm_and_bh_match_statsmodels():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 12))
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
        assert benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])


def test_seed_permutation_p_is_the_exact_enumeration():
    a, b = [0.51, 0.52, 0.50, 0.53, 0.515], [0.55, 0.54, 0.56, 0.52, 0.57]
    pooled = np.array(a + b)
    observed = abs(np.mean(b) - np.mean(a))
    extreme = total = 0
    for idx in itertools.combinations(range(10), 5):
        rest = [i for i in range(10) if i not in idx]
        total += 1
        extreme += abs(pooled[list(idx)].mean() - pooled[rest].mean()) >= observed - 1e-12
    assert seed_permutation_p(a, b) == pytest.approx(extreme / total)
    assert seed_permutation_p(a, b) >= 2 / 252  # the floor with 5 + 5 runs
    assert seed_permutation_p([0.5], b) is None  # a single run cannot be permuted


def test_cluster_matrix_keeps_language_versions_of_a_question_together():
    runs = [{"en:q1": 1.0, "de:q1": 0.0, "en:q2": 0.5, "de:q2": 0.5, "fr:q3": 1.0},
            {"en:q1": 0.0, "de:q1": 0.0, "en:q2": 1.0, "de:q2": 1.0}]
    x, clusters = cluster_matrix(runs)
    assert clusters == ["q1", "q2"]  # q3 is not answered by every run
    assert x.tolist() == [[0.5, 0.5], [0.0, 1.0]]


def test_without_question_heterogeneity_it_is_students_t_test_over_runs():
    rng = np.random.default_rng(1)
    questions = rng.normal(0.5, 0.2, 300)
    a_runs, a_vals = _runs(rng, 0.0, 5, questions, 0.01, 0.0)
    b_runs, b_vals = _runs(rng, 0.012, 5, questions, 0.01, 0.0)
    res = compare_runs(a_runs, b_runs, a_vals, b_vals, n_resamples=20_000)
    scipy_t = stats.ttest_ind(b_vals, a_vals)
    assert res.delta == pytest.approx(np.mean(b_vals) - np.mean(a_vals))
    assert res.df == 8
    assert res.p == pytest.approx(scipy_t.pvalue, rel=0.1)  # bootstrap SE vs the analytic one
    half = stats.t.ppf(0.975, 8) * np.sqrt(np.var(a_vals, ddof=1) / 5 + np.var(b_vals, ddof=1) / 5)
    assert res.ci_high - res.ci_low == pytest.approx(2 * half, rel=0.05)


def test_question_heterogeneity_is_estimated_and_widens_the_interval():
    rng = np.random.default_rng(2)
    questions = rng.normal(0.5, 0.2, 400)
    effect = rng.normal(0, 0.1, 400)  # the effect differs by question
    a_runs, a_vals = _runs(rng, 0.0, 5, questions, 0.002, 0.02)
    b_runs, b_vals = _runs(rng, 0.0, 5, questions, 0.002, 0.02, effect=effect)
    xa, _ = cluster_matrix(a_runs)
    xb, _ = cluster_matrix(b_runs)
    assert question_heterogeneity(xa, xb) == pytest.approx(effect.var(ddof=1), rel=0.2)
    wide = compare_runs(a_runs, b_runs, a_vals, b_vals, n_resamples=4000)
    assert wide.se > np.sqrt(np.var(a_vals, ddof=1) / 5 + np.var(b_vals, ddof=1) / 5)


@pytest.mark.parametrize("one_run_side", [False, True])
def test_false_positive_rate_under_the_null_stays_near_five_percent(one_run_side):
    """Seeded simulation: seed effects, per-run noise and question heterogeneity whose mean is 0."""
    rng = np.random.default_rng(3 + one_run_side)
    rejections, covered, draws = 0, 0, 300
    for _ in range(draws):
        questions = rng.normal(0.5, 0.2, 120)
        effect = rng.normal(0, 0.02, 120)
        a_runs, a_vals = _runs(rng, 0.0, 1 if one_run_side else 5, questions, 0 if one_run_side else 0.004, 0.01)
        b_runs, b_vals = _runs(rng, 0.0, 5, questions, 0.004, 0.01, effect=effect)
        res = compare_runs(a_runs, b_runs, a_vals, b_vals, n_resamples=800, seed=int(rng.integers(1 << 30)))
        rejections += res.p < 0.05
        covered += res.ci_low <= 0 <= res.ci_high
    assert 0.01 <= rejections / draws <= 0.10
    assert covered / draws >= 0.90


def test_two_single_models_get_the_paired_t_test_over_question_clusters():
    """The base against a training-free method on it: one model each side, only the question sample varies."""
    rng = np.random.default_rng(11)
    questions = rng.normal(0.5, 0.2, 300)
    (a_run,), (a_val,) = _runs(rng, 0.0, 1, questions, 0, 0.05)
    (b_run,), (b_val,) = _runs(rng, 0.01, 1, questions, 0, 0.05)
    res = compare_runs([a_run], [b_run], [a_val], [b_val], n_resamples=20_000)
    x, clusters = cluster_matrix([a_run, b_run])
    oracle = stats.ttest_1samp(x[1] - x[0], 0.0)
    low, high = oracle.confidence_interval(0.95)
    assert res.df == len(clusters) - 1 == 299
    assert res.delta == pytest.approx((x[1] - x[0]).mean(), abs=1e-12)
    assert res.p == pytest.approx(oracle.pvalue, rel=0.15)
    # the bootstrap standard error against the t-test's: half-widths of the 95 % intervals within 5 %
    assert res.ci_high - res.ci_low == pytest.approx(high - low, rel=0.05)


def test_a_planted_difference_is_found_with_its_direction():
    rng = np.random.default_rng(5)
    found = 0
    for _ in range(40):
        questions = rng.normal(0.5, 0.2, 200)
        a_runs, a_vals = _runs(rng, 0.0, 5, questions, 0.004, 0.01)
        b_runs, b_vals = _runs(rng, 0.015, 5, questions, 0.004, 0.01)
        res = compare_runs(a_runs, b_runs, a_vals, b_vals, list(range(5)), list(range(5)), n_resamples=800)
        found += res.p < 0.05 and res.ci_low > 0 and direction(res.delta, "mAP") == "better"
    assert found >= 36
    assert res.seeds_agree <= 5 and len(res.seed_deltas) == 5


def test_direction_and_marks_follow_the_metric():
    assert direction(0.01, "mAP") == "better" and direction(-0.01, "mAP") == "worse"
    assert direction(-5.0, "max_rank_distance") == "better"
    assert direction(0.02, "same_lang@10") == "worse"  # a bias measure: a higher share is worse
    assert mark(0.004, -3.0, "max_rank_distance") == "▲**"
    assert mark(0.03, -0.01, "mAP") == "▼*"
    assert mark(0.2, 0.5, "mAP") == ""


def test_verdict_names_the_best_method_or_no_detectable_difference():
    def test(a, b, delta, low, high):
        return {"task": "t", "setting": "multi", "metric": "mAP", "a": a, "b": b, "delta": delta, "ci_low": low,
                "ci_high": high, "p_adjusted": 0.01, "correction": "holm (primary)", "seeds_agree": 5,
                "seed_deltas": [delta] * 5}

    cells = [{"task": "t", "setting": "multi", "metric": "mAP", "group": g, "mean": m}
             for g, m in (("x-y", 0.56), ("hybrid", 0.55), ("base", 0.30))]
    summary = {"version": 2, "cells": cells, "tests": [test("x-y", "hybrid", -0.01, -0.015, -0.005)]}
    (v,) = verdicts(summary, "t")
    assert (v["best"], v["runner_up"], v["detectable"]) == ("x-y", "hybrid", True)
    assert v["margin"] == pytest.approx(0.01) and v["ci_low"] == pytest.approx(0.005)
    assert v["text"].startswith("multilingual mAP: x-y is highest, ahead of hybrid by +0.0100")
    summary["tests"] = [{**test("x-y", "hybrid", -0.01, -0.02, 0.001), "p_adjusted": 0.09}]
    (v,) = verdicts(summary, "t")
    assert not v["detectable"] and "no detectable difference between x-y and hybrid" in v["text"]
    # an interval that excludes 0 is not enough when the family's correction leaves p above .05
    summary["tests"] = [{**test("x-y", "hybrid", -0.01, -0.015, -0.0001), "p_adjusted": 0.1}]
    (v,) = verdicts(summary, "t")
    assert not v["detectable"] and "adjusted p = 0.1" in v["text"]


def test_star_survival_reads_old_pooled_answers_as_the_first_protocol():
    from hybridviz.experiments.verdict import star_survival

    star = {"task": "mkqa-answers", "setting": "multi", "metric": "mAP", "a": "x-y", "b": "hybrid",
            "p_randomisation": 0.001}
    new = {"version": 2, "tests": [
        {**star, "task": "mkqa-answers-v1", "p": 0.01, "p_adjusted": 0.02},  # the same protocol: kept
        {**star, "p": 0.9, "p_adjusted": 0.9}]}  # protocol 2 answers another question
    assert star_survival({"tests": [star]}, new)["mkqa-answers"]["kept"] == 1
    assert star_survival({"version": 2, "tests": [star]}, new)["mkqa-answers"]["kept"] == 0
    # once every run is on protocol 2 the old protocol's stars have no cell to hold in: not comparable, not lost
    gone = star_survival({"tests": [star]}, {"version": 2, "tests": new["tests"][1:]})["mkqa-answers"]
    assert (gone["old_stars"], gone["kept"], gone["lost"]) == (0, 0, [])
    assert gone["not_comparable"] == ["hybrid vs x-y · multi mAP"]


def test_training_free_answers_compare_the_best_method_with_each_sampler_in_the_metrics_direction():
    from hybridviz.experiments.verdict import training_free_answers

    means = {"base": (0.30, 1200), "base+center": (0.44, 660), "base+center@index": (0.54, 446),
             "x-y": (0.56, 331), "x-y+center": (0.557, 345)}
    cells = [{"task": "t", "setting": s, "metric": m, "group": g, "mean": v[i]}
             for g, v in means.items() for i, (s, m) in enumerate((("multi", "mAP"), ("multi", "max_rank_distance")))]
    cells += [{"task": "t", "setting": "mono", "metric": "mAP", "group": g, "mean": 0.79} for g in means]

    def test(a, b, metric, delta, p, setting="multi"):
        half = 10.0 if metric == "max_rank_distance" else 0.01
        return {"task": "t", "setting": setting, "metric": metric, "a": a, "b": b, "delta": delta,
                "ci_low": delta - half, "ci_high": delta + half, "p_adjusted": p, "correction": "bh (training-free)",
                "seeds_agree": 5, "seed_deltas": [delta] * 5}

    summary = {"version": 2, "cells": cells, "tests": [
        test("base+center@index", "x-y", "mAP", 0.022, 0.01),  # stored as x-y minus the method
        test("base+center@index", "x-y", "max_rank_distance", -115.0, 0.002),
        test("x-y", "x-y+center", "max_rank_distance", 14.0, 0.2),
        test("base", "x-y", "mAP", -0.036, 0.002, setting="mono")]}
    answers = training_free_answers(summary, "t")
    # the best method by multilingual mAP (center@index, not center), phrased from its side
    assert answers["training-free vs fine-tuned"] == [
        "multilingual mAP: base+center@index is worse than x-y; Δ -0.0220 (95 % CI -0.0320 to -0.0120; "
        "adjusted p = 0.01, bh (training-free); 5 of 5 seeds agree)",
        # a higher rank distance is worse
        "multilingual max rank distance: base+center@index is worse than x-y; Δ +115.0 (95 % CI +105.0 to "
        "+125.0; adjusted p = 0.002, bh (training-free); 5 of 5 seeds agree)"]
    assert answers["combined vs the sampler alone"] == [
        "multilingual max rank distance: no detectable difference between x-y+center and x-y; Δ +14.0 (95 % CI "
        "+4.0 to +24.0; adjusted p = 0.2, bh (training-free); 5 of 5 seeds agree)"]
    assert answers["monolingual cost against the base"] == [
        "monolingual mAP: x-y is worse than base; Δ -0.0360 (95 % CI -0.0460 to -0.0260; adjusted p = 0.002, "
        "bh (training-free); 5 of 5 seeds agree)"]
