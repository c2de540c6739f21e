"""Language bias in the multilingual pool: max rank distance per query language per sampler, the same-language
share of the top 10, and one query's relevant-item ranks for every model."""

from __future__ import annotations

import streamlit as st

from pages import heading

heading("Language bias")  # first: a cold visit shows the page's heading before the imports below

import pandas as pd

from hybridviz import dashboard as dash
from hybridviz.viz.bias import (box_statistics, per_query_views, query_rank_frame, query_rank_plot,
                                rank_distance_boxes, same_language_bars)
from hybridviz.viz.style import SAMPLER_ORDER, TASK_LABELS

progress = dash.PageProgress("Language_bias", [1, 4, 2, 2])  # a cold visit parses 18 per-query files: a bar
progress.next("reading the result bundle")
bundle = dash.bundle_page(progress=progress, intro=(
    "In a pool of all languages an unbiased retriever ranks a question's parallel answers close together whatever "
    "their language. **Max rank distance** = worst − best rank of a query's parallel relevant items (LAReQA / the "
    "paper's bias measure; lower is better)."))

task = dash.param_select("Benchmark", bundle.tasks(), "task", format_func=lambda t: TASK_LABELS.get(t, t))
results = [r for r in dash.results_with_lab(bundle, task) if r.metrics.get("settings", {}).get("multi", {}).get("macro")]
groups = dash.groups_of(results)
shown = dash.param_multiselect("Samplers", groups, "groups", default=[g for g in groups if g in SAMPLER_ORDER])
chosen = [r for r in results if r.group in shown]
if not chosen:
    progress.close()
    st.info("Pick at least one sampler.")
    st.stop()


# a resource, not data: shared read-only, never copied (unpickling 18 evaluations' frames took ~4 s per rerun)
@st.cache_resource(show_spinner=False, max_entries=64)
def _views(folder: str, stamp) -> tuple:
    return per_query_views(next(r for r in results if str(r.folder) == folder))


# each evaluation's per-query file parsed once (~0.4 s cold) and cached, behind a progress bar
progress.next("the per-query results")
views = dash.map_with_progress(
    "Reading per-query results", chosen, lambda r: _views(str(r.folder), bundle.manifest.get("updated")),
    describe=lambda r: f"{r.label} · {r.task}")
frame = pd.concat([v[0] for v in views], ignore_index=True)
dash.release_memory()  # the decoded per-query files' transient objects back to the system


@st.cache_data(show_spinner=False, max_entries=16)
def _box_stats(folders: tuple[str, ...], stamp, _frame, pooled: bool) -> object:  # keyed by the evaluations read
    return box_statistics(_frame, ["group"] if pooled else ["group", "query_lang"], "max_rank_distance")


progress.next("the rank distances and same-language shares")
pooled = dash.param_select("Rank distance", ["every query language together", "per query language"], "boxes",
                          help="Together: one box per sampler over all its queries. Per query language: a box per "
                               "sampler and language (pick a few samplers to keep them readable).") != "per query language"
stats = _box_stats(tuple(str(r.folder) for r in chosen), bundle.manifest.get("updated"), frame, pooled)
dash.chart(rank_distance_boxes(stats, task, pooled=pooled), stats, f"rank-distance-{task}")
dash.chart(same_language_bars(frame, task), frame.groupby(["group", "query_lang"])["same_lang@10"].mean()
           .reset_index(), f"same-language-{task}")
dash.unsupported_languages_note(chosen)

progress.next("one query, every model")
st.subheader("One query, every model")
ids = sorted(frame["query_id"].unique())
needle = st.text_input("Find a query by id or language prefix (e.g. `de:`)", key="needle",
                       value=st.query_params.get("query", ""))
matches = [q for q in ids if needle.strip() in q] if needle.strip() else ids
if not matches:
    st.warning(f"No query id contains {needle!r}; ids look like {ids[0]!r}.")
else:
    texts = dash.query_texts_of(chosen[0])
    query_id = dash.param_select("Query", matches[:2000], "query")
    st.markdown(f"> {texts.get(query_id, '')}")
    ranks = query_rank_frame(chosen, query_id, [v[1] for v in views])
    dash.chart(query_rank_plot(ranks, query_id, texts.get(query_id, "")), ranks,
               f"ranks-{query_id.replace(':', '_')}")
    worst = frame[frame["query_id"] == query_id][["label", "max_rank_distance", "same_lang@10", "ap"]]
    st.dataframe(worst.sort_values("label"), hide_index=True, width="stretch")
dash.provenance_caption(bundle)
progress.close()
