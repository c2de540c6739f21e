"""hybridviz: `streamlit run app.py`. The pages live in pages/ (thin: they call the hybridviz library and draw);
this file only names them, their order, their URLs and their headings (st.navigation; Streamlit's legacy pages/
mode, which a fresh server uses for its first visit of a page URL, is handed over here by pages.hand_over)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import mark_entry

PAGES = Path(__file__).parent / "pages"
# (file, menu title, URL path, heading); the heading is drawn here, before the page's script imports the library
# and loads its bundle, so a cold first visit shows which page it is within a second or two
LAYOUT = [
    ("Overview.py", "Overview", "", "hybridviz"),
    ("Sampler_comparison.py", "Sampler comparison", "Sampler_comparison", "Sampler comparison"),
    ("Robustness.py", "Robustness", "Robustness", "Robustness"),
    ("Language_pairs.py", "Language pairs", "Language_pairs", "Language pairs"),
    ("Language_bias.py", "Language bias", "Language_bias", "Language bias"),
    ("Embedding_map.py", "Embedding map", "Embedding_map", "Embedding map"),
    ("Search.py", "Search", "Search", "Search"),
    ("Fine-tune_lab.py", "Fine-tune lab", "Fine-tune_lab", "Fine-tune lab"),
    ("Evaluation_details.py", "Evaluation details", "Evaluation_details", "Evaluation details"),
]
HEADINGS = {url: heading for _, _, url, heading in LAYOUT}

navigation = st.navigation([
    st.Page(PAGES / file, title=title, url_path=url or None, default=not url) for file, title, url, _ in LAYOUT])
heading = HEADINGS[navigation.url_path]
st.set_page_config(page_title="hybridviz" if heading == "hybridviz" else f"hybridviz · {heading.lower()}",
                   layout="wide")
st.title(heading)
mark_entry()
navigation.run()
