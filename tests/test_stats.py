"""Run-level statistics (hybridviz/experiments/stats.py) against scipy, statsmodels, brute force and simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hybridviz.experiments.stats import (benjamini_hochberg, cluster_matrix, compare_runs, direction, holm, mark,
                                         question_heterogeneity, seed_permutation_p, verdict_of)
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


@pytest.mark.slow
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
    assert res.n_pairs == 25 and 0 <= res.pairs_agree <= 25  # unpaired: every run of a against every run of b


def test_direction_and_marks_follow_the_metric():
    assert direction(0.01, "mAP") == "better" and direction(-0.01, "mAP") == "worse"
    assert direction(-5.0, "max_rank_distance") == "better"
    assert direction(0.02, "same_lang@10") == "worse"  # a bias measure: a higher share is worse
    assert mark(0.004, -3.0, "max_rank_distance") == "▲**"
    assert mark(0.03, -0.01, "mAP") == "▼*"
    assert mark(0.2, 0.5, "mAP") == ""


def _stored(a, b, delta, low, high, p_adjusted=0.01, metric="mAP", setting="multi", verdict=None, margin=0.01,
            p_tost_adjusted=0.5, correction="holm (primary)", mde=0.012, mde_family=0.016):
    """A summary-v3 test as `summarise` stores it (the verdict word from stats.verdict_of unless given)."""
    word = verdict or verdict_of(p_adjusted, p_tost_adjusted, delta, low, high, margin, metric)
    return {"task": "t", "setting": setting, "metric": metric, "a": a, "b": b, "delta": delta, "ci_low": low,
            "ci_high": high, "p_adjusted": p_adjusted, "correction": correction, "pairs_agree": 25, "n_pairs": 25,
            "verdict": word, "margin": margin, "p_tost_adjusted": p_tost_adjusted, "mde": mde,
            "mde_family": mde_family, "marks_test": "max(t, exact permutation of runs)"}


def test_verdict_names_the_best_method_or_what_the_comparison_shows():
    cells = [{"task": "t", "setting": "multi", "metric": "mAP", "group": g, "mean": m}
             for g, m in (("x-y", 0.56), ("hybrid", 0.55), ("base", 0.30))]
    summary = {"version": 3, "cells": cells, "tests": [_stored("x-y", "hybrid", -0.01, -0.015, -0.005)]}
    (v,) = verdicts(summary, "t")
    assert (v["best"], v["runner_up"], v["detectable"], v["verdict"]) == ("x-y", "hybrid", True, "better")
    assert v["margin"] == pytest.approx(0.01) and v["ci_low"] == pytest.approx(0.005)
    assert v["text"].startswith("multilingual mAP: x-y is highest, ahead of hybrid by +0.0100")
    assert "25 of 25 run pairs agree" in v["text"] and v["plan"] == "post hoc plan"
    # significant and yet within the margin by TOST: ahead, said to be smaller than the margin
    summary["tests"] = [_stored("x-y", "hybrid", -0.004, -0.006, -0.002, p_tost_adjusted=0.001)]
    (v,) = verdicts(summary, "t")
    assert v["verdict"] == "better" and v["text"].endswith("detectable, smaller than the margin.")
    # not significant, interval spanning 0 and the margin: undetermined, with the MDE
    summary["tests"] = [_stored("x-y", "hybrid", -0.01, -0.02, 0.001, p_adjusted=0.09)]
    (v,) = verdicts(summary, "t")
    assert not v["detectable"] and v["verdict"] == "undetermined"
    assert "undetermined between x-y and hybrid" in v["text"] and "MDE 0.0120, 0.0160 after correction" in v["text"]
    # an interval that excludes 0 is not enough when the family's correction leaves p above .05
    summary["tests"] = [_stored("x-y", "hybrid", -0.01, -0.015, -0.0001, p_adjusted=0.1)]
    (v,) = verdicts(summary, "t")
    assert not v["detectable"] and "adjusted p = 0.1" in v["text"]
    # within the margin by TOST: equivalent
    summary["tests"] = [_stored("x-y", "hybrid", -0.002, -0.006, 0.002, p_adjusted=0.4, p_tost_adjusted=0.003)]
    (v,) = verdicts(summary, "t")
    assert v["verdict"] == "equivalent" and "are equivalent within ±0.0100" in v["text"]
    # the interval wholly outside the margin but not significant by the marks' rule: not equivalent
    summary["tests"] = [_stored("x-y", "hybrid", -0.03, -0.045, -0.015, p_adjusted=0.06, p_tost_adjusted=1.0)]
    (v,) = verdicts(summary, "t")
    assert v["verdict"] == "not equivalent" and "not equivalent within ±0.0100" in v["text"]
    # an outdated summary (before the plan's statistics) gives no verdict at all
    assert verdicts({**summary, "version": 2}, "t") == []


def test_verdict_words_follow_the_rule():
    assert verdict_of(0.01, 0.001, 0.004, 0.001, 0.007, 0.01, "mAP") == "better"  # significant wins over equivalent
    assert verdict_of(0.01, None, 5.0, 1.0, 9.0, None, "max_rank_distance") == "worse"
    assert verdict_of(0.2, 0.01, 0.004, -0.003, 0.009, 0.01, "mAP") == "equivalent"
    assert verdict_of(0.2, 0.06, 0.004, -0.003, 0.0105, 0.01, "mAP") == "undetermined"
    assert verdict_of(0.07, 1.0, 0.03, 0.015, 0.045, 0.01, "mAP") == "not equivalent"
    assert verdict_of(0.2, None, 0.0, -0.1, 0.1, None, "mAP") == "undetermined"  # no margin: never equivalent


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


def test_training_free_answers_compare_the_best_inductive_method_and_keep_transductive_ones_apart():
    from hybridviz.experiments.verdict import TRANSDUCTIVE_SECTION, training_free_answers, transductive_verdicts

    # center@index has the best multilingual mAP of the training-free methods, but it is transductive
    means = {"base": (0.30, 1200), "base+center": (0.44, 660), "base+center@index": (0.54, 446),
             "x-y": (0.56, 331), "x-y+center": (0.557, 345)}
    cells = [{"task": "t", "setting": s, "metric": m, "group": g, "mean": v[i]}
             for g, v in means.items() for i, (s, m) in enumerate((("multi", "mAP"), ("multi", "max_rank_distance")))]
    cells += [{"task": "t", "setting": "mono", "metric": "mAP", "group": g, "mean": 0.79} for g in means]

    def test(a, b, metric, delta, p, setting="multi", correction="bh (training-free)"):
        half = 10.0 if metric == "max_rank_distance" else 0.01
        rank = metric == "max_rank_distance"
        return _stored(a, b, delta, delta - half, delta + half, p_adjusted=p, metric=metric, setting=setting,
                       correction=correction, margin=24.0 if rank else 0.01, p_tost_adjusted=1.0,
                       mde=30.0 if rank else 0.012, mde_family=41.0 if rank else 0.016)

    summary = {"version": 3, "cells": cells, "tests": [
        test("base+center", "x-y", "mAP", 0.12, 0.001),  # stored as x-y minus the method
        test("base+center", "x-y", "max_rank_distance", -329.0, 0.001),
        test("base+center@index", "x-y", "mAP", 0.022, 0.01, correction="bh (transductive)"),
        test("base", "base+center@index", "mAP", 0.24, 0.001, correction="bh (transductive)"),
        test("x-y", "x-y+center", "max_rank_distance", 14.0, 0.2),
        test("base", "x-y", "mAP", -0.036, 0.002, setting="mono")]}
    runner_up = test("x-y", "x-y+center", "mAP", -0.003, 0.5)
    answers = training_free_answers(summary, "t")
    # the best inductive training-free method (center, not center@index), phrased from its side
    assert answers["training-free vs fine-tuned"] == [
        "multilingual mAP: base+center is worse than x-y; Δ -0.1200 (95 % CI -0.1300 to -0.1100; "
        "adjusted p = 0.001, bh (training-free); 25 of 25 run pairs agree)",
        # a higher rank distance is worse
        "multilingual max rank distance: base+center is worse than x-y; Δ +329.0 (95 % CI +319.0 to "
        "+339.0; adjusted p = 0.001, bh (training-free); 25 of 25 run pairs agree)"]
    assert not any("center@index" in line for key, lines in answers.items() if key != TRANSDUCTIVE_SECTION
                   for line in lines)
    assert answers["combined vs the sampler alone"] == [
        "multilingual max rank distance: undetermined between x-y+center and x-y (no detectable difference; "
        "equivalence within ±24.0 not shown); Δ +14.0 (95 % CI +4.0 to +24.0; adjusted p = 0.2, bh (training-free); "
        "25 of 25 run pairs agree); MDE 30.0, 41.0 after correction; TOST adjusted p = 1"]
    assert answers["monolingual cost against the base"] == [
        "monolingual mAP: x-y is worse than base; Δ -0.0360 (95 % CI -0.0460 to -0.0260; adjusted p = 0.002, "
        "bh (training-free); 25 of 25 run pairs agree)"]
    # the transductive method has its own section: against its base and the best inductive method
    assert answers[TRANSDUCTIVE_SECTION] == transductive_verdicts(summary, "t")
    assert answers[TRANSDUCTIVE_SECTION][:2] == [
        "multilingual mAP: base+center@index is better than base; Δ +0.2400 (95 % CI +0.2300 to +0.2500; "
        "adjusted p = 0.001, bh (transductive); 25 of 25 run pairs agree)",
        "multilingual mAP: base+center@index is worse than x-y; Δ -0.0220 (95 % CI -0.0320 to -0.0120; adjusted p = "
        "0.01, bh (transductive); 25 of 25 run pairs agree) [the best inductive method on this cell]"]
    # and never in a "best method" sentence, although its mean beats every inductive method but x-y
    cells.append({"task": "t", "setting": "multi", "metric": "mAP", "group": "x-y+center@index", "mean": 0.60})
    summary["tests"].append(runner_up)
    (v,) = [v for v in verdicts(summary, "t") if v["metric"] == "mAP" and v["setting"] == "multi"]
    assert (v["best"], v["runner_up"]) == ("x-y", "x-y+center") and "@index" not in v["text"]


# ------------------------------------------------------------------------------------------ issue #31, item 4


def test_tost_is_statsmodels_two_one_sided_tests():
    from statsmodels.stats.weightstats import ttost_ind

    from hybridviz.experiments.stats import tost_p

    rng = np.random.default_rng(21)
    for _ in range(20):
        a, b = rng.normal(0.50, 0.006, 5), rng.normal(0.50 + rng.uniform(-0.02, 0.02), 0.006, 5)
        se = np.sqrt(np.var(a, ddof=1) / 5 + np.var(b, ddof=1) / 5)  # = the pooled SE with equal sides
        ours = tost_p(b.mean() - a.mean(), se, 8, 0.01)
        assert ours == pytest.approx(ttost_ind(b, a, -0.01, 0.01, usevar="pooled")[0], rel=1e-9)
    assert tost_p(0.0, 0.001, 8, None) is None
    # through the run-level comparison (bootstrap SE, no question heterogeneity): close to statsmodels
    questions = rng.normal(0.5, 0.2, 300)
    a_runs, a_vals = _runs(rng, 0.0, 5, questions, 0.004, 0.0)
    b_runs, b_vals = _runs(rng, 0.003, 5, questions, 0.004, 0.0)
    res = compare_runs(a_runs, b_runs, a_vals, b_vals, n_resamples=20_000, margin=0.01)
    oracle = ttost_ind(np.array(b_vals), np.array(a_vals), -0.01, 0.01, usevar="pooled")[0]
    assert res.margin == 0.01 and res.p_tost == pytest.approx(oracle, rel=0.25, abs=2e-3)


def test_minimum_detectable_effect_is_statsmodels_power_solution():
    from statsmodels.stats.power import TTestIndPower

    from hybridviz.experiments.stats import minimum_detectable_effect

    for n, alpha in ((5, 0.05), (5, 0.0125), (3, 0.05), (10, 0.01)):
        d = TTestIndPower().solve_power(effect_size=None, nobs1=n, alpha=alpha, power=0.8, ratio=1.0)
        sd = 0.006  # a run's standard deviation: SE of the difference of two means of n runs
        ours = minimum_detectable_effect(sd * np.sqrt(2 / n), 2 * n - 2, alpha, 0.8)
        assert ours == pytest.approx(d * sd, rel=1e-4), (n, alpha)
    # the figure: hybrid vs X-Y with 5 + 5 seeds, SE .00378 -> about .012, and .016 at Holm's alpha / 4
    assert minimum_detectable_effect(0.00378, 8) == pytest.approx(0.0121, abs=5e-4)
    assert minimum_detectable_effect(0.00378, 8, 0.05 / 4) == pytest.approx(0.0158, abs=5e-4)
    assert minimum_detectable_effect(0.0, 8) == 0.0
    assert minimum_detectable_effect(0.001, 1189) == pytest.approx(0.001 * 2.80, rel=0.01)  # the normal limit


def test_marks_are_capped_by_the_permutation_floor():
    """Planted: 5 + 5 runs far apart, t-based p ~1e-9, but no relabelling of 10 runs can give p < 2/252."""
    from hybridviz.experiments.bundle import adjust

    rng = np.random.default_rng(8)
    questions = rng.normal(0.5, 0.2, 200)
    a_runs, a_vals = _runs(rng, 0.0, 5, questions, 0.001, 0.0)
    b_runs, b_vals = _runs(rng, 0.05, 5, questions, 0.001, 0.0)
    res = compare_runs(a_runs, b_runs, a_vals, b_vals, n_resamples=4000, margin=0.01)
    assert res.p < 1e-6 and res.p_permutation == pytest.approx(2 / 252)
    assert res.p_marks == pytest.approx(2 / 252) and "permutation" in res.marks_test
    tests = [{"task": "t", "setting": "multi", "metric": "mAP", "a": "x-x-mono", "b": "hybrid", "family": "primary",
              **res.as_dict()}]
    adjust(tests)
    assert tests[0]["mark"] == "▲**"  # not ***, although the t-based p alone would give it
    assert tests[0]["p_t_adjusted"] < 0.001 and tests[0]["verdict"] == "better"
    # the marked test: t-based p .01 (adjusted .043) but permutation p .056: no mark, not "better"
    tests = [{"task": "t", "setting": "cross", "metric": "mAP", "a": "x-x-mono", "b": "x-y", "family": "secondary",
              "delta": 0.01, "ci_low": 0.002, "ci_high": 0.018, "p": 0.043, "p_permutation": 0.056,
              "p_marks": 0.056, "se": 0.0035, "df": 8, "margin": 0.01, "p_tost": 0.5}]
    adjust(tests)
    assert tests[0]["mark"] == "" and tests[0]["verdict"] == "undetermined"
    # a one-run side (the base) has no permutation test: the t-based p stands
    (base_run,), (base_val,) = _runs(rng, 0.0, 1, questions, 0.0, 0.0)
    res = compare_runs([base_run], b_runs, [base_val], b_vals, n_resamples=2000)
    assert res.p_permutation is None and res.p_marks == res.p and "one-run side" in res.marks_test
    assert (res.n_pairs, res.pairs_agree) == (5, 5)


def test_paragraph_clusters_join_questions_that_share_a_paragraph_across_languages():
    from hybridviz.experiments.stats import paragraph_clusters

    relevant = {  # candidate ids "<lang>:<paragraph>:<sentence>"
        "en:q1": ["en:0:1", "de:0:1"], "de:q1": ["en:0:1", "de:0:1"],
        "en:q2": ["en:0:3"],  # another question of paragraph 0
        "en:q3": ["en:1:0"], "de:q3": ["de:1:0"],
        "de:q4": ["de:1:2", "en:2:0"],  # links paragraph 1 (de) with paragraph 2 (en)
        "en:q5": ["en:2:4"],  # paragraph 2 in English: joined to q3 and q4 through q4
        "en:q6": ["en:3:0"], "de:q6": ["de:3:0"],
        "en:q7": []}  # no relevant item: its own question
    clusters = paragraph_clusters(relevant)
    of = clusters.of
    assert clusters.level == "paragraph"
    assert of["en:q1"] == of["de:q1"] == of["en:q2"] != of["en:q3"]
    assert of["en:q3"] == of["de:q3"] == of["de:q4"] == of["en:q5"]
    assert of["en:q6"] == of["de:q6"] and len({of["en:q1"], of["en:q3"], of["en:q6"], of["en:q7"]}) == 4
    # the cluster matrix averages within paragraph clusters; the question level keeps 7 clusters
    runs = [{q: float(i) for i, q in enumerate(relevant)}]
    x, names = cluster_matrix(runs, clusters)
    assert len(names) == 4 and cluster_matrix(runs)[0].shape == (1, 7)
    assert x[0][names.index(of["en:q1"])] == pytest.approx(np.mean([0, 1, 2]))


def test_effects_shared_by_a_paragraph_widen_the_interval_at_paragraph_level():
    """Planted: 60 paragraphs of 5 questions whose effect is the paragraph's. Question clusters treat the five as
    independent and understate the spread; paragraph clusters carry it."""
    from hybridviz.experiments.stats import paragraph_clusters

    rng = np.random.default_rng(13)
    paragraphs = np.repeat(np.arange(60), 5)
    questions = rng.normal(0.5, 0.2, 300)
    effect = rng.normal(0, 0.08, 60)[paragraphs]
    a_runs, a_vals = _runs(rng, 0.0, 5, questions, 0.0005, 0.01)
    b_runs, b_vals = _runs(rng, 0.0, 5, questions, 0.0005, 0.01, effect=effect)
    relevant = {f"{lang}:{c}": [f"{lang}:{paragraphs[c]}:{c % 5}"] for c in range(300) for lang in ("en", "de")}
    by_question = compare_runs(a_runs, b_runs, a_vals, b_vals, n_resamples=4000)
    by_paragraph = compare_runs(a_runs, b_runs, a_vals, b_vals, n_resamples=4000,
                                clusters=paragraph_clusters(relevant))
    assert (by_question.clusters, by_paragraph.clusters) == (300, 60)
    assert by_paragraph.cluster_level == "paragraph" and by_question.cluster_level == "question"
    assert by_paragraph.se > 1.5 * by_question.se
