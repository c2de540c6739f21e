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


def test_overview_leads_with_the_hybrid_effect_picture_and_folds_the_rest(data_root):
    """On the committed sampler grid: the first chart is the hybrid-effect picture (both comparators), the computed
    sentence follows it, the method is stated, and the verdict sentences and headline tables sit in expanders."""
    import json

    from hybridviz.experiments.effects import follows_reference, follows_sentence, hybrid_effects

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.query_params["bundle"] = "sampler-grid"  # the 100-step grid, whichever bundle the Overview opens on
    at.run()
    assert not at.exception
    spec = at.get("plotly_chart")[0].proto.spec
    assert "hybrid vs X-X-mono" in spec and "hybrid vs X-Y" in spec
    summary = json.loads((ROOT / "cache" / "reference" / "sampler-grid" / "summary.json").read_text())
    effects = hybrid_effects(summary)
    answer, _, reasons = follows_sentence(follows_reference(effects), effects).partition(": ")
    assert any(m.value == f"**{answer}:** {reasons}" for m in at.markdown)
    assert answer == "Does MKQA follow XQuAD-R? Partly"
    assert any("How XQuAD-R and MKQA are compared:** by verdict category only" in c.value for c in at.caption)
    labels = [e.label for e in at.expander]
    assert labels[0].startswith("Verdict, computed from the bundle") and any("Headline tables" in x for x in labels)
    folded = " ".join(m.value for m in at.expander[0].markdown)
    assert "samplers (and the base)" in folded and "multilingual mAP:" in folded
    # the picture is a claim about the bundle's training budget, and says so above it
    budget = [i.value for i in at.info if "How far these models trained" in i.value]
    assert budget and "0.20 epoch" in budget[0] and "The picture and every verdict below" in budget[0]
    order = [(getattr(e, "type", None), str(getattr(e, "value", ""))) for e in at.main]
    first_chart = next(k for k, (kind, _) in enumerate(order) if kind == "plotly_chart")
    assert any("How far these models trained" in v for _, v in order[:first_chart])
