"""Search: a query in any language against a benchmark pool, top-k per model side by side, with the language,
the score and whether each hit is a known relevant item."""

from __future__ import annotations


import streamlit as st

from pages import heading

heading("Search")  # first: a cold visit shows the page's heading before the imports below

import time

from hybridviz import dashboard as dash
from hybridviz.errors import HybridvizError
from hybridviz.search import (MAX_QUERY_CHARS, POOLS, EncodingClock, PoolIndex, QueryError, check_query,
                              example_queries, has_words, load_pool)

models = dash.available_models()
pool_name = dash.param_select("Pool", list(POOLS), "pool")
chosen = dash.param_multiselect("Models", list(models), "models", default=list(models)[:1])
k = st.slider("Top k", 1, 50, int(st.query_params.get("k", 10)))
st.query_params["k"] = str(k)


@st.cache_resource(show_spinner="Loading the pool…", max_entries=4)
def _pool(name: str):
    return load_pool(name)


corpus = _pool(pool_name)
langs = dash.param_multiselect("Candidate languages (empty = all)", corpus.languages, "langs", default=[])
examples = example_queries(corpus, n=6) if corpus.query_texts else []
if "query" not in st.session_state:
    st.session_state["query"] = st.query_params.get("q", "")


def _use_example() -> None:
    if st.session_state.get("example"):
        st.session_state["query"] = st.session_state["example"]


st.selectbox("…or start from a benchmark query (its relevant items are known)", [""] + examples, key="example",
             on_change=_use_example)
query = st.text_area("Query", key="query", height=80, help=f"Any language; at most {MAX_QUERY_CHARS:,} characters.")
if not chosen:
    st.info("Pick at least one model.")
    st.stop()
if not query.strip():
    st.info("Type a query (or pick a benchmark query) to search "
            f"{len(corpus.cand_ids):,} candidates in {len(corpus.languages)} languages.")
    st.stop()
try:
    query = check_query(query)
except QueryError as exc:
    st.error(str(exc))
    st.stop()
st.query_params["q"] = query
wordless = not has_words(query)
if wordless:  # one message for every model: their hits are nearest neighbours of nothing in particular
    st.warning("The query has no letters or digits (only emoji, punctuation or symbols): an encoder has nothing "
               "to match in it, so the hits below, whatever their scores, are not answers to anything.")


def show_hits(hits) -> None:
    """The hits as a table whose text wraps: each hit's text shown whole."""
    st.table(hits[["rank", "lang", "score", "relevant", "text"]].assign(score=hits["score"].round(3)),
             hide_index=True)


columns = st.columns(len(chosen))
for column, label in zip(columns, chosen):
    with column:
        st.markdown(f"**{label}**")
        index = dash.pool_index(models[label], pool_name)
        if index is None:
            # first use of this model on this pool: encode it a chunk at a time, with a progress bar and an ETA,
            # and answer from the part encoded so far (labelled partial) while the rest follows
            bar, partial = st.progress(0.0, text="Loading the model…"), st.empty()
            began, clock = time.perf_counter(), EncodingClock()  # the rate from encoding alone, after the load
            for done, total, index in PoolIndex.build_stepwise(dash.encoder(models[label]), corpus):
                now = time.perf_counter()
                left = clock.left(now, done, total)
                bar.progress(done / total, text=f"Encoding the pool: {done:,} of {total:,} candidates · "
                                                f"{now - began:.0f} s so far, "
                                                + (f"about {left:.0f} s left" if left is not None else
                                                   "estimating the time left…")
                                                + " (once per model and pool; cached on disk)")
                if not index.complete:
                    try:
                        hits = index.search(query, k, langs or None)
                    except HybridvizError:
                        continue
                    with partial.container():
                        st.caption(f"Partial results: the best of the {done:,} candidates encoded so far "
                                   f"(of {total:,}); they update as the pool is encoded.")
                        show_hits(hits)
            bar.empty()
            partial.empty()
            dash.keep_pool_index(models[label], pool_name, index)
        start = time.perf_counter()
        try:
            hits = index.search(query, k, langs or None)
        except HybridvizError as exc:
            st.error(str(exc))
            continue
        took = (time.perf_counter() - start) * 1000
        unknown = 0.0 if wordless else index.unknown_token_share(query)  # (wordless: said once, above)
        if unknown > 0.3:
            st.warning(f"{unknown:.0%} of the query's tokens are unknown to this model's vocabulary: it has "
                       "probably never seen this language or script, so the ranking means little.")
        show_hits(hits)
        known = (hits["relevant"] == "yes").sum()
        note = "" if hits["relevant"].iloc[0] == "unknown" else f" · {known} known relevant in the top {k}"
        st.caption(f"{took:.0f} ms{note}")
        st.download_button("Hits as CSV", hits.to_csv(index=False).encode(), f"hits-{models[label]}.csv".replace(":", "_"),
                           key=f"dl-{label}")
