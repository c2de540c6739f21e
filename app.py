"""hybridviz: `streamlit run app.py`. The pages live in views/ (thin: they call the hybridviz library and draw);
this file only names them and their order."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "views"
st.set_page_config(page_title="hybridviz", layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "0_Overview.py", title="Overview", default=True),
    st.Page(PAGES / "1_Sampler_comparison.py", title="Sampler comparison", url_path="Sampler_comparison"),
    st.Page(PAGES / "2_Language_pairs.py", title="Language pairs", url_path="Language_pairs"),
    st.Page(PAGES / "3_Language_bias.py", title="Language bias", url_path="Language_bias"),
    st.Page(PAGES / "4_Embedding_map.py", title="Embedding map", url_path="Embedding_map"),
    st.Page(PAGES / "5_Search.py", title="Search", url_path="Search"),
    st.Page(PAGES / "6_Fine-tune_lab.py", title="Fine-tune lab", url_path="Fine-tune_lab"),
    st.Page(PAGES / "8_Evaluation_details.py", title="Evaluation details", url_path="Evaluation_details"),
])
navigation.run()
