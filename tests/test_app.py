"""The landing page renders real status from the library."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_landing_page_renders(data_root):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert at.title[0].value == "hybridviz"
    frame = at.dataframe[0].value
    assert set(frame["benchmark"]) == {"xquad-r", "mlqa-r", "mkqa (subset)"}
    assert int(frame.loc[frame["benchmark"] == "xquad-r", "queries"].iloc[0]) == 13090


def test_landing_page_without_data(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    statuses = list(at.dataframe[0].value["status"])
    assert all("was not found" in s for s in statuses)
