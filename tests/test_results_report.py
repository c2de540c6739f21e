"""results/report.py: one Report, three renderings (markdown, LaTeX, CSV), and the CLI's text tables."""

from __future__ import annotations

import csv
import io

import pandas as pd

from hybridviz.results.report import Report, markdown_table, mkqa_nq_table


def sample() -> Report:
    report = Report(preamble="Under the pre-registered plan.", legend="▲ better")
    frame = pd.DataFrame({"method": ["x_y", "hybrid"], "mAP": [0.61234, None]})
    report.section("xquad-r (hybridviz)").table(frame).bullets(["hybrid better (p = .01)"], lead="Verdict:")
    report.section("mkqa & more").paragraph("50% of queries").table(pd.DataFrame({"n": [3]}))
    return report


def test_markdown_has_every_block_in_order():
    text = sample().to_markdown()
    assert text.split("\n")[:4] == ["Under the pre-registered plan.", "", "### xquad-r (hybridviz)", ""]
    assert markdown_table(pd.DataFrame({"method": ["x_y", "hybrid"], "mAP": [0.61234, None]})) in text
    assert "| x_y | 0.612 |" in text and "| hybrid |  |" in text
    assert "Verdict:\n- hybrid better (p = .01)" in text and text.endswith("\n\n▲ better")
    assert Report().to_markdown() == "" and not Report()


def test_latex_escapes_and_closes_every_environment():
    tex = sample().to_latex()
    assert r"\subsection*{mkqa \& more}" in tex and r"x\_y" in tex and r"50\% of queries" in tex
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 2
    assert tex.count(r"\begin{itemize}") == tex.count(r"\end{itemize}") == 1


def test_csv_holds_every_table_row_under_its_section():
    rows = list(csv.DictReader(io.StringIO(sample().to_csv())))
    assert [r["section"] for r in rows] == ["xquad-r (hybridviz)"] * 2 + ["mkqa & more"]
    assert rows[0]["method"] == "x_y" and rows[0]["mAP"] == "0.612" and rows[1]["mAP"] == "" and rows[2]["n"] == "3"


def test_mkqa_nq_table_names_hit_rates():
    report = {"model": {"spec": "me5-small"}, "corpus": {"passages": 1000, "index": "exact"},
              "settings": {"nq": {"per_language": {"de": {"hit@20": 0.5, "hit@100": 0.75, "n_queries": 4}},
                                  "macro": {"hit@20": 0.5, "hit@100": 0.75}}}}
    lines = mkqa_nq_table(report).split("\n")
    assert "hit@20" in lines[1] and "recall" not in mkqa_nq_table(report)
    assert lines[2].split() == ["de", "0.500", "0.750", "4"] and lines[3].split() == ["macro", "0.500", "0.750"]
