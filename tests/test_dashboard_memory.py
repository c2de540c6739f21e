"""The server's memory bounds (#32 item 7): one shared encoder per model for every browser session, at most
MAX_ENCODERS of them (the least recently used evicted), pool indexes that hold no encoder, and encoders that keep
one copy of their weights."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest


def _script():
    import streamlit as st

    from hybridviz import dashboard as dash

    enc = dash.encoder(st.session_state.get("spec", "tiny"))
    st.write(f"id={id(enc)}")


def _fresh(monkeypatch, bound: int):
    from hybridviz import dashboard as dash

    monkeypatch.setattr(dash, "MAX_ENCODERS", bound)
    dash._encoders.clear()
    dash._indexes.clear()
    return dash


def test_two_sessions_share_one_encoder(monkeypatch):
    dash = _fresh(monkeypatch, 4)
    first = AppTest.from_function(_script, default_timeout=120).run()
    second = AppTest.from_function(_script, default_timeout=120).run()  # another browser session
    assert not first.exception and not second.exception
    assert first.markdown[0].value == second.markdown[0].value  # the same object, not a per-session copy
    assert dash.held_encoders() == ["tiny"]


@pytest.mark.slow  # the quick tier stays under 3 min (#32)
def test_encoder_cache_evicts_the_least_recently_used(monkeypatch):
    dash = _fresh(monkeypatch, 2)
    tiny = dash.encoder("tiny")
    gone = weakref.ref(dash.encoder("tiny:1"))
    assert dash.encoder("tiny") is tiny  # used again: now the most recent
    dash.encoder("tiny:7")
    assert dash.held_encoders() == ["tiny", "tiny:7"]
    gc.collect()
    assert gone() is None  # evicted and freed: nothing else held it
    assert dash.encoder("tiny") is tiny


def test_a_debiased_spec_shares_its_base_model(monkeypatch):
    dash = _fresh(monkeypatch, 4)
    base = dash.encoder("tiny")
    monkeypatch.setattr("hybridviz.encoders.debias.DebiasedEncoder.__init__",
                        lambda self, b, m: setattr(self, "held_base", b))
    assert dash.encoder("tiny+center").held_base is base


def test_held_index_does_not_keep_its_encoder(monkeypatch):
    from hybridviz.search import PoolIndex

    dash = _fresh(monkeypatch, 1)
    enc = dash.encoder("tiny")
    corpus = type("C", (), {"task": "t"})()
    dash.keep_pool_index("tiny", "pool", PoolIndex(enc, corpus, object(), {}))
    gone = weakref.ref(enc)
    del enc
    dash.encoder("tiny:1")  # evicts tiny
    gc.collect()
    assert gone() is None
    assert dash.pool_index("tiny", "pool").encoder is dash.encoder("tiny")


def test_encode_only_keeps_one_copy_with_the_same_vectors_and_fingerprint():
    from hybridviz.encoders import load_encoder

    texts = ["Wer schrieb die Unabhängigkeitserklärung?", "the tides", "東京"]
    copied = load_encoder("tiny", use_cache=False, precision="bf16")
    lean = load_encoder("tiny", use_cache=False, precision="bf16").encode_only()
    assert lean._fast_models["bf16"] is lean.model  # the loaded weights converted, no second copy
    assert next(lean.model.parameters()).dtype.is_floating_point
    assert str(next(lean.model.parameters()).dtype) == "torch.bfloat16"
    assert lean.fingerprint == copied.fingerprint
    assert np.array_equal(lean.encode(texts, "query"), copied.encode(texts, "query"))
    fp32 = load_encoder("tiny", use_cache=False)
    assert fp32.encode_only()._fast_models == {}  # fp32 on the CPU: nothing to convert


@pytest.mark.slow  # the quick tier stays under 3 min (#32)
def test_bias_views_read_as_columns_equal_those_read_from_the_records(tiny_grid):
    """Language bias reads the compact per-query file as columns (no dict per item): the same frames as the
    records give."""
    import pandas as pd

    from hybridviz.experiments.bundle import load_bundle
    from hybridviz.viz.bias import _line_views, per_query_views

    out = tiny_grid[0]
    results = [r for r in load_bundle(out).select() if r.compact() is not None
               and r.metrics.get("settings", {}).get("multi", {}).get("macro")]
    assert results
    for r in results[:3]:
        fast, slow = per_query_views(r), _line_views(r, r.per_query_lines())
        pd.testing.assert_frame_equal(fast[0], slow[0])
        a, b = (f.astype({c: str for c in ("query_id", "candidate_id", "lang")}) for f in (fast[1], slow[1]))
        pd.testing.assert_frame_equal(a, b)
        first = a["query_id"].iloc[0]
        assert (fast[1]["query_id"] == first).sum() == (slow[1]["query_id"] == first).sum()


def test_encoders_read_from_the_same_tokenizer_files_share_one_tokenizer():
    from hybridviz import dashboard as dash
    from hybridviz.encoders import load_encoder

    a, b = load_encoder("tiny", use_cache=False), load_encoder("tiny", use_cache=False)
    texts = ["Wer schrieb die Unabhängigkeitserklärung?", "the tides"]
    before = b.encode(texts, "query")
    assert b.model.tokenizer is not a.model.tokenizer
    dash._share_tokenizer(b, [a])
    assert b.model.tokenizer is a.model.tokenizer
    assert np.array_equal(b.encode(texts, "query", store=False), before)
    c = load_encoder("tiny:1", use_cache=False)  # other files: its own
    dash._share_tokenizer(c, [a])
    assert c.model.tokenizer is not a.model.tokenizer
