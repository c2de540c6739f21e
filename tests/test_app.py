"""The landing page renders real status from the library."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def data_frame(at):
    """The data-status table of the overview (the headline tables come first when a bundle exists)."""
    return next(d.value for d in at.dataframe if {"benchmark", "status"} <= set(d.value.columns))


def test_landing_page_renders(data_root):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert at.title[0].value == "hybridviz"
    frame = data_frame(at)
    assert set(frame["benchmark"]) == {"xquad-r", "mlqa-r", "mkqa (subset)"}
    assert int(frame.loc[frame["benchmark"] == "xquad-r", "queries"].iloc[0]) == 13090
    assert frame.loc[frame["benchmark"] == "xquad-r", "candidates"].iloc[0] == "13014 sentences"


def test_landing_page_without_data(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    statuses = list(data_frame(at)["status"])
    assert all("was not found" in s for s in statuses)


@pytest.mark.slow
def test_details_page_shows_a_real_evaluation(tmp_path, monkeypatch, tiny):
    from hybridviz import status
    from hybridviz.evaluate import evaluate

    evaluate("tiny", "xquad-r", languages=["en", "de"], limit=10, out_dir=tmp_path / "tiny-xquad-r", encoder=tiny)
    monkeypatch.setattr(status, "EVALUATIONS_DIR", tmp_path)
    at = AppTest.from_file(str(ROOT / "pages" / "8_Evaluation_details.py"), default_timeout=120).run()
    assert not at.exception
    assert at.selectbox[1].value == "mAP"
    shown = at.dataframe[0].value
    assert list(shown.columns)[:2] == ["mAP", "R@1"] and "macro" in shown.index
    before = at.get("plotly_chart")[0].proto.spec
    assert '"title":{"text":"mAP' in before.replace(" ", "")
    at.selectbox[1].select("MRR").run()
    assert not at.exception and at.selectbox[1].value == "MRR"
    after = at.get("plotly_chart")[0].proto.spec
    assert '"title":{"text":"MRR' in after.replace(" ", "") and after != before


def test_details_page_empty_state(tmp_path, monkeypatch):
    from hybridviz import status

    monkeypatch.setattr(status, "EVALUATIONS_DIR", tmp_path)
    at = AppTest.from_file(str(ROOT / "pages" / "8_Evaluation_details.py"), default_timeout=60).run()
    assert not at.exception
    assert "python -m hybridviz evaluate" in at.info[0].value
