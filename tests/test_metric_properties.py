"""Property-based checks of the metric functions (hypothesis): bounds, order invariance, ties vs sklearn."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from hybridviz import metrics as M


@st.composite
def scored_pools(draw):
    n = draw(st.integers(2, 60))
    scores = np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=float)  # many ties
    relevant = np.array(sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))))
    return scores, relevant


@settings(max_examples=300, deadline=None)
@given(scored_pools())
def test_ap_matches_sklearn_and_is_bounded(pool):
    scores, relevant = pool
    ranks = M.pessimistic_ranks(scores, relevant)
    y = np.zeros(len(scores), int)
    y[relevant] = 1
    ap = M.average_precision(ranks)
    assert 0.0 < ap <= 1.0
    assert abs(ap - average_precision_score(y, scores)) < 1e-9
    for value in M.block_metrics([ranks], with_bias=True).values():
        assert np.isfinite(value).all()


@settings(max_examples=200, deadline=None)
@given(scored_pools(), st.randoms(use_true_random=False))
def test_metrics_do_not_depend_on_candidate_order(pool, rnd):
    scores, relevant = pool
    perm = np.array(rnd.sample(range(len(scores)), len(scores)))
    inverse = np.argsort(perm)
    shuffled_scores = scores[perm]
    shuffled_relevant = inverse[relevant]
    a = M.query_metrics(M.pessimistic_ranks(scores, relevant), with_bias=True)
    b = M.query_metrics(M.pessimistic_ranks(shuffled_scores, shuffled_relevant), with_bias=True)
    assert a == b


@settings(max_examples=200, deadline=None)
@given(scored_pools())
def test_recall_ndcg_mrr_bounds(pool):
    scores, relevant = pool
    m = M.query_metrics(M.pessimistic_ranks(scores, relevant), with_bias=True)
    for name in ("R@1", "R@10", "hit@1", "hit@10", "nDCG@10", "MRR", "mAP"):
        assert 0.0 <= m[name] <= 1.0, name
    assert m["hit@10"] >= m["R@10"] and m["hit@1"] >= m["R@1"]
    assert 0 <= m["max_rank_distance"] <= len(scores) - 1
