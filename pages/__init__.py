"""The dashboard's pages, run by app.py's st.navigation. Each page's first call is `hand_over()`, before it imports
the library: this package imports nothing but Streamlit, so that call costs nothing on a cold server."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

ENTRY_KEY = "hybridviz_entry_ran"  # set by app.py on every run: its navigation and heading are drawn


def mark_entry() -> None:
    st.session_state[ENTRY_KEY] = True


def hand_over() -> None:
    """While a fresh server has not yet run app.py, Streamlit serves a URL that names a page in its legacy pages/
    mode: the page runs alone, without app.py's navigation and heading, and stays so until st.navigation is
    called. Such a run switches that mode off (the one assignment st.navigation makes) and reruns at once, so
    app.py draws. A page run on its own (AppTest) reruns once and goes on."""
    if not st.session_state.get(ENTRY_KEY):
        st.session_state[ENTRY_KEY] = True
        PagesManager.uses_pages_directory = False
        st.rerun()
