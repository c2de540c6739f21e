"""faiss IndexFlatIP and the numpy fallback give the same rankings on real embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from hybridviz.index import ExactIndex, top_k
from hybridviz.tasks import build_corpus


def test_faiss_and_numpy_rank_identically(tiny, data_root):
    corpus = build_corpus("xquad-r", ["en", "es"], limit=40)
    C = tiny.encode(corpus.cand_texts, "passage")
    Q = tiny.encode(corpus.query_texts, "query")
    fa, na = ExactIndex(C, "faiss"), ExactIndex(C, "numpy")
    assert (fa.backend, na.backend) == ("faiss", "numpy")
    fs, fi = fa.search(Q, 50)
    ns, ni = na.search(Q, 50)
    np.testing.assert_allclose(fs, ns, atol=1e-5)
    assert (fi == ni).mean() > 0.999  # only float rounding of near-equal scores may swap neighbours
    # and both agree with a full argsort of the exact scores
    full = np.argsort(-na.scores(Q), axis=1, kind="stable")[:, :50]
    assert (ni == full).all()


def test_ties_ordered_by_position():
    C = np.array([[1, 0], [0, 1], [1, 0], [1, 0]], dtype=np.float32)
    for backend in ("faiss", "numpy"):
        scores, ids = ExactIndex(C, backend).search(np.array([[1, 0]], np.float32), 3)
        assert ids.tolist() == [[0, 2, 3]], backend


def test_bad_shapes_are_named():
    idx = ExactIndex(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="dimension"):
        idx.search(np.ones((1, 4), np.float32), 2)
    with pytest.raises(ValueError, match="2-D"):
        ExactIndex(np.ones(3))
    assert idx.search(np.ones((2, 3), np.float32), 10)[1].shape == (2, 3)
    assert top_k(np.array([[0.1, 0.3, 0.2]]), 2)[1].tolist() == [[1, 2]]


def test_top_k_is_exact_with_ties_across_the_cut():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(200, 60)).astype(np.float32)  # heavy ties everywhere
    values, ids = top_k(scores, 7)
    expected = np.lexsort((np.tile(np.arange(60), (200, 1)), -scores), axis=1)[:, :7]
    assert (ids == expected).all()
    np.testing.assert_array_equal(values, np.take_along_axis(scores, expected, axis=1))


def test_a_pool_encoded_stepwise_answers_from_what_is_encoded_and_ends_complete(data_root):
    """Search answers while the pool encodes: each partial index covers every language and returns only encoded
    candidates, ranked as the complete index ranks them; the last step equals a one-shot build."""
    from hybridviz.encoders import load_encoder
    from hybridviz.search import PoolIndex
    from hybridviz.tasks import build_corpus

    corpus = build_corpus("xquad-r", ["en", "de", "zh"], limit=40)
    encoder = load_encoder("tiny", use_cache=False)
    steps = list(PoolIndex.build_stepwise(encoder, corpus, chunk=30, first_chunk=30))
    assert [s[0] for s in steps] == list(range(30, len(corpus.cand_ids), 30)) + [len(corpus.cand_ids)]
    growing = [s[0] for s in PoolIndex.build_stepwise(encoder, corpus, chunk=20, first_chunk=5)]
    n = len(corpus.cand_ids)
    assert growing == [5, 15, 35] + list(range(55, n, 20)) + [n]  # the first chunks double, then stay at 20
    full = steps[-1][2]
    assert full.complete and not any(s[2].complete for s in steps[:-1])
    query = corpus.query_texts[0]
    everything = full.search(query, k=len(corpus.cand_ids))
    for done, total, partial in steps[:-1]:
        assert {corpus.cand_langs[i] for i in partial.positions} == {"en", "de", "zh"}
        hits = partial.search(query, k=5)
        encoded = {corpus.cand_ids[i] for i in partial.positions}
        assert set(hits["candidate_id"]) <= encoded
        expected = [c for c in everything["candidate_id"] if c in encoded][:5]
        assert list(hits["candidate_id"]) == expected
    assert full.search(query, k=5).equals(PoolIndex.build(encoder, corpus).search(query, k=5))
