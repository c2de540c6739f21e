"""The dashboard's pages, found by Streamlit's own multipage discovery of this folder: `app.py` (run by
`streamlit run app.py`) is the Overview at /, and each file here is one more page, its URL, menu label and place
in the menu read from its name (`3_Language_pairs.py`: /Language_pairs, "Language pairs", third after the
Overview; the numeric prefix only orders). This file is no page (Streamlit skips `__init__.py`); it holds what
every page draws first: the tab title, the heading and the menu. Streamlit's own menu would label the home page
after its file ("app"), so `.streamlit/config.toml` hides it and `menu()` draws the same links with st.page_link,
the home page as "Overview". Each page calls `heading` before it imports the library (E402 is allowed in app.py
and pages/ by ruff.toml), so a cold visit shows the page's heading at once. Pages stay thin: they call the
hybridviz library and draw."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HOME_HEADING = "hybridviz"
HOME_LABEL = "Overview"
ROOT = Path(__file__).resolve().parents[1]


def page_files() -> list[tuple[str, str]]:
    """(path relative to app.py, menu label) of every page in the menu's order: app.py first, then this folder's
    files sorted as Streamlit sorts them (the numeric prefix orders and is dropped, underscores read as spaces)."""
    from streamlit.source_util import page_icon_and_name, page_sort_key

    files = sorted((p for p in (ROOT / "pages").glob("*.py") if p.name != "__init__.py"), key=page_sort_key)
    # Streamlit's own naming: the URL path is the file's name without its numeric prefix; the label reads it
    return [("app.py", HOME_LABEL)] + [(f"pages/{p.name}", page_icon_and_name(p)[1].replace("_", " "))
                                       for p in files]


def menu() -> None:
    """The page menu in the sidebar (Streamlit's own is hidden: it would call the Overview "app")."""
    from streamlit.errors import StreamlitPageNotFoundError

    with st.sidebar:
        for path, label in page_files():
            try:
                st.page_link(path, label=label)
            except StreamlitPageNotFoundError:  # a page run on its own (streamlit.testing's AppTest): no menu
                return


def heading(title: str) -> None:
    """The browser tab's title, the wide layout and the page's heading: each page's first call."""
    st.set_page_config(page_title="hybridviz" if title == HOME_HEADING else f"hybridviz · {title.lower()}",
                       layout="wide")
    menu()
    st.title(title)
