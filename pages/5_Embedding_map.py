"""Embedding map: UMAP of parallel items coloured by language, for several models on the same items (one
full-width panel each, one shared legend), with one parallel set linked and each space's alignment figures."""

from __future__ import annotations


import streamlit as st

from pages import heading

heading("Embedding map")  # first: a cold visit shows the page's heading before the imports below

import time
import numpy as np
import pandas as pd

from hybridviz import dashboard as dash
from hybridviz.projection import (SOURCES, embed_items, language_separation, map_seconds_estimate, parallel_items,
                                  record_map_time, umap_cache_path, umap_coordinates)
from hybridviz.viz.embedding_map import embedding_maps


MAX_MODELS = 4

st.markdown("A language-agnostic space puts parallel items (the same answer or question in every language) "
            "together; a language-biased one clusters by language. Each panel is its own UMAP (cosine) of the "
            "same items.")
dash.image_format()
models = dash.available_models()
labels = list(models)
source = dash.param_select("Items", list(SOURCES), "source", help="; ".join(f"{k}: {v}" for k, v in SOURCES.items()))
n_groups = st.slider("Parallel sets in the sample", 20, 300, int(st.query_params.get("n", 60)), step=20,
                     help="Each set has one item per language (11 for XQuAD-R, 17 for MKQA).")
st.query_params["n"] = str(n_groups)
chosen = dash.param_multiselect(f"Models (up to {MAX_MODELS})", labels, "models", default=labels[:2])
if len(labels) == 1:
    st.info("Only the base model is on this machine. Fine-tune one in the Fine-tune lab, or run "
            f"`{dash.GRID_COMMAND}`, to compare.")
if not chosen:
    st.info("Pick at least one model.")
    st.stop()
if len(chosen) > MAX_MODELS:
    st.warning(f"Showing the first {MAX_MODELS} of the {len(chosen)} models picked (each map is a UMAP of its own).")
    chosen = chosen[:MAX_MODELS]


@st.cache_data(show_spinner="Sampling parallel items…")
def _items(source: str, n: int) -> pd.DataFrame:
    return parallel_items(source, n, seed=0)


items = _items(source, n_groups)
# a parallel set by its question (English where it has one): a hex id says nothing
first = items.sort_values("lang", key=lambda c: c != "en").drop_duplicates("group").set_index("group")["text"]
group = dash.param_select("Link one parallel set", sorted(items["group"].unique(), key=lambda g: first[g]), "group",
                          format_func=lambda g: first[g] if len(first[g]) <= 100 else first[g][:99] + "…")
estimate, source = map_seconds_estimate(len(items), [models[label] for label in chosen])
st.caption(f"For each model: load it, embed the {len(items):,} items, and a 2-d UMAP of them. A map is computed once "
           f"per model and sample and kept under cache/umap/ (then it shows in a second or two); computing the "
           f"{len(chosen)} here afresh takes about {estimate:.0f} s (from {source}), longer on a busy CPU.")

panels, scores, frames = [], [], []
# per model: load (~2 s), embed, UMAP (the slowest, ~3x a load; its first call also compiles numba's kernels)
progress = dash.StepProgress(f"Mapping {len(items)} items", [1, 1, 3] * len(chosen))
for label in chosen:
    progress.begin(f"loading {label}")
    enc = dash.encoder(models[label])
    progress.end()
    fresh, began = not umap_cache_path(enc, items).exists(), time.perf_counter()
    progress.begin(f"embedding with {label}")
    vectors = embed_items(enc, items)
    progress.end()
    progress.begin(f"UMAP of {label}")
    coords = umap_coordinates(enc, items)
    progress.end()
    if fresh:  # the rate of the next estimate
        record_map_time(models[label], time.perf_counter() - began, len(items))
    sep = language_separation(vectors, list(items["lang"]), list(items["group"]))
    panels.append((label, np.asarray(coords), sep))
    scores.append({"model": label, **sep})
    frames.append(items.assign(model=label, x=coords[:, 0], y=coords[:, 1]))
progress.close()
dash.release_memory()  # the encodes' and UMAP's freed buffers back to the system
dash.chart(embedding_maps(items, panels, selected_group=group), pd.concat(frames),
           f"umap-{source.replace(' ', '-')}-{len(chosen)}-models")
st.subheader("How language-agnostic is each space?")
st.dataframe(pd.DataFrame(scores).rename(columns={
    "silhouette_language": "language silhouette (lower = less clustered by language)",
    "parallel_rank": "mean rank of parallel items among all (lower = closer)"}), hide_index=True, width="stretch")
st.caption("Computed on the full embeddings of the sampled items, not on the 2-d map. Coordinates are cached per "
           "(model, items, UMAP parameters) under cache/umap/.")
