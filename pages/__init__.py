"""The dashboard's pages, found by Streamlit's own multipage discovery of this folder: `app.py` (run by
`streamlit run app.py`) is the Overview at /, and each file here is one more page, its URL, menu label and place
in the menu read from its name (`3_Language_pairs.py`: /Language_pairs, "Language pairs", third after the
Overview; the numeric prefix only orders). This file is no page (Streamlit skips `__init__.py`); it holds what
every page draws first. Pages stay thin: they call the hybridviz library and draw."""

from __future__ import annotations

import streamlit as st

HOME_HEADING = "hybridviz"


def heading(title: str) -> None:
    """The browser tab's title, the wide layout and the page's heading: each page's first call."""
    st.set_page_config(page_title="hybridviz" if title == HOME_HEADING else f"hybridviz · {title.lower()}",
                       layout="wide")
    st.title(title)
