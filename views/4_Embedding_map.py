"""Embedding map: UMAP of parallel items coloured by language, base and a fine-tune side by side on the same
items, with one parallel set linked."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hybridviz import dashboard as dash
from hybridviz.projection import SOURCES, embed_items, language_separation, parallel_items, umap_coordinates
from hybridviz.viz.embedding_map import embedding_scatter

st.set_page_config(page_title="hybridviz · embedding map", layout="wide")
st.title("Embedding map")
st.markdown("A language-agnostic space puts parallel items (the same answer or question in every language) "
            "together; a language-biased one clusters by language. Each map is its own UMAP (cosine) of the "
            "same items.")
dash.image_format()
models = dash.available_models()
labels = list(models)
source = dash.param_select("Items", list(SOURCES), "source", help="; ".join(f"{k}: {v}" for k, v in SOURCES.items()))
n_groups = st.slider("Parallel sets in the sample", 20, 300, int(st.query_params.get("n", 60)), step=20,
                     help="Each set has one item per language (11 for XQuAD-R, 17 for MKQA).")
st.query_params["n"] = str(n_groups)
col_a, col_b = st.columns(2)
with col_a:
    left = dash.param_select("Left model", labels, "left")
with col_b:
    right = dash.param_select("Right model", labels, "right", default=labels[-1])
if len(labels) == 1:
    st.info("Only the base model is on this machine. Fine-tune one in the Fine-tune lab, or run "
            f"`{dash.GRID_COMMAND}`, to compare.")


@st.cache_data(show_spinner="Sampling parallel items…")
def _items(source: str, n: int) -> pd.DataFrame:
    return parallel_items(source, n, seed=0)


items = _items(source, n_groups)
group = dash.param_select("Link one parallel set", sorted(items["group"].unique()), "group")

scores = []
# the same model on both sides is drawn once: two identical charts would say nothing twice
sides = [(col_a, left, "left"), (col_b, right, "right")] if left != right else [(st.container(), left, "left")]
for column, label, side in sides:
    with column:
        enc = dash.encoder(models[label])
        with st.status(f"Embedding {len(items)} items with {label}…", expanded=False) as status:
            coords = umap_coordinates(enc, items)
            vectors = embed_items(enc, items)
            status.update(label=f"{len(items)} items · {label}", state="complete")
        sep = language_separation(vectors, list(items["lang"]), list(items["group"]))
        scores.append({"model": label, **sep})
        data = items.assign(x=coords[:, 0], y=coords[:, 1])
        dash.chart(embedding_scatter(items, coords, label, selected_group=group), data,
                   f"umap-{source.replace(' ', '-')}-{side}-{models[label].replace(':', '_')}")
st.subheader("How language-agnostic is each space?")
st.dataframe(pd.DataFrame(scores).rename(columns={
    "silhouette_language": "language silhouette (lower = less clustered by language)",
    "parallel_rank": "mean rank of parallel items among all (lower = closer)"}), hide_index=True, width="stretch")
st.caption("Computed on the full embeddings of the sampled items, not on the 2-d map. Coordinates are cached per "
           "(model, items, UMAP parameters) under cache/umap/.")
