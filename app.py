"""hybridviz: `streamlit run app.py`. The pages live in pages/ (thin: they call the hybridviz library and draw);
this file only names them, their order and their URLs (st.navigation: Streamlit's own pages/ discovery is off)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "pages"
st.set_page_config(page_title="hybridviz", layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "Overview.py", title="Overview", default=True),
    st.Page(PAGES / "Sampler_comparison.py", title="Sampler comparison", url_path="Sampler_comparison"),
    st.Page(PAGES / "Robustness.py", title="Robustness", url_path="Robustness"),
    st.Page(PAGES / "Language_pairs.py", title="Language pairs", url_path="Language_pairs"),
    st.Page(PAGES / "Language_bias.py", title="Language bias", url_path="Language_bias"),
    st.Page(PAGES / "Embedding_map.py", title="Embedding map", url_path="Embedding_map"),
    st.Page(PAGES / "Search.py", title="Search", url_path="Search"),
    st.Page(PAGES / "Fine-tune_lab.py", title="Fine-tune lab", url_path="Fine-tune_lab"),
    st.Page(PAGES / "Evaluation_details.py", title="Evaluation details", url_path="Evaluation_details"),
])
navigation.run()
