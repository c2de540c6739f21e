"""Metrics against independent oracles (sklearn, pytrec_eval, scipy) on real XQuAD-R relevance and scores."""

from __future__ import annotations

import numpy as np
import pytest
import pytrec_eval
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import average_precision_score

from hybridviz import metrics as M
from hybridviz.tasks import build_corpus, slices


@pytest.fixture(scope="module")
def lexical_problem(data_root):
    """A real multilingual pool (6 languages: 6 relevant per query) scored by char-n-gram TF-IDF: real relevance, and many exact
    ties (zero scores across scripts), so tie handling is exercised."""
    corpus = build_corpus("xquad-r", ["en", "de", "zh", "ru", "ar", "es"], limit=60, seed=3)
    (s,) = list(slices(corpus, "multi"))
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit(corpus.cand_texts)
    C = vec.transform([corpus.cand_texts[c] for c in s.pool])
    Q = vec.transform([corpus.query_texts[q] for q in s.queries])
    scores = (Q @ C.T).toarray().astype(np.float64)
    return s, scores


def test_average_precision_equals_sklearn_with_ties(lexical_problem):
    s, scores = lexical_problem
    assert len(scores) == 360 and scores.shape[1] > 7000
    n_tied = 0
    ranks = M.block_ranks(scores, s.relevant)
    for i, rel in enumerate(s.relevant):
        y = np.zeros(scores.shape[1], dtype=int)
        y[rel] = 1
        expected = average_precision_score(y, scores[i])
        assert M.average_precision(ranks[i]) == pytest.approx(expected, abs=1e-6)
        n_tied += len(np.unique(scores[i, rel])) < len(rel)
    assert n_tied > 50, "the fixture should contain many tied relevant candidates"


def test_rank_metrics_equal_pytrec_eval_without_ties(lexical_problem):
    s, scores = lexical_problem
    rng = np.random.default_rng(0)
    scores = scores + rng.permutation(scores.size).reshape(scores.shape) * 1e-12  # break ties, keep order
    ranks = M.block_ranks(scores, s.relevant)
    qrels = {f"q{i}": {f"d{j}": 1 for j in rel} for i, rel in enumerate(s.relevant)}
    run = {f"q{i}": {f"d{j}": float(v) for j, v in enumerate(row)} for i, row in enumerate(scores)}
    oracle = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recall_10", "ndcg_cut_10", "recip_rank",
                                                    "P_1"}).evaluate(run)
    for i in range(len(scores)):
        o = oracle[f"q{i}"]
        r = ranks[i]
        assert M.average_precision(r) == pytest.approx(o["map"], abs=1e-6)
        assert M.recall_at_k(r, 10) == pytest.approx(o["recall_10"], abs=1e-6)
        assert M.ndcg_at_k(r, 10) == pytest.approx(o["ndcg_cut_10"], abs=1e-6)
        assert M.reciprocal_rank(r) == pytest.approx(o["recip_rank"], abs=1e-6)
        assert M.hit_at_k(r, 1) == pytest.approx(o["P_1"], abs=1e-6)


def test_pessimistic_ranks_on_ties():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.5])
    assert M.pessimistic_ranks(scores, np.array([0, 2])).tolist() == [4, 4]
    assert M.block_ranks(scores[None], [np.array([1, 4])])[0].tolist() == [1, 4]
    ragged = M.block_ranks(np.stack([scores, -scores]), [np.array([0, 1, 2, 3, 4]), np.array([3])])
    assert [r.tolist() for r in ragged] == [[4, 1, 4, 5, 4], [1]]
    # tied relevant items cannot beat the order-independent sklearn value
    y = np.array([1, 0, 1, 0, 0])
    assert M.average_precision(M.pessimistic_ranks(scores, np.array([0, 2]))) == \
        pytest.approx(average_precision_score(y, scores))


def test_small_known_values():
    assert M.average_precision(np.array([1, 3])) == pytest.approx((1 + 2 / 3) / 2)
    assert M.max_rank_distance(np.array([3, 17, 5])) == 14
    assert M.recall_at_k(np.array([1, 11, 12]), 10) == pytest.approx(1 / 3)
    assert M.same_language_share(["en", "de", "en", "zh"], "en") == 0.5
    assert M.ndcg_at_k(np.array([2]), 10) == pytest.approx(1 / np.log2(3))
    per, macro = M.macro_average([1.0, 0.0, 0.5], ["en", "en", "de"])
    assert per == {"de": 0.5, "en": 0.5} and macro == 0.5


def test_standardised_ranks_give_spearman_as_dot_products():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 300))
    a[2] = a[0] + rng.normal(size=300)
    a[3, :40] = 0.0  # ties
    expected = spearmanr(a, axis=1).statistic
    r = M.standardised_ranks(a)
    np.testing.assert_allclose(r @ r.T, expected, atol=1e-9)
    many_ties = rng.integers(0, 7, size=(5, 200)).astype(np.float32)  # every row full of tie groups
    r = M.standardised_ranks(many_ties)
    np.testing.assert_allclose(r @ r.T, spearmanr(many_ties, axis=1).statistic, atol=1e-9)


def test_block_metrics_equal_per_query_metrics(lexical_problem):
    s, scores = lexical_problem
    ranks = M.block_ranks(scores, s.relevant) + [np.array([3, 3, 7]), np.array([1]), np.array([12, 2])]
    block = M.block_metrics(ranks, with_bias=True)
    for i, r in enumerate(ranks):
        single = M.query_metrics(r, with_bias=True)
        for name, value in single.items():
            assert block[name][i] == pytest.approx(value, abs=1e-12), (name, r)
