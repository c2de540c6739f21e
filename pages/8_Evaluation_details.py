"""Details of one finished evaluation: language-pair heatmap per metric and per-language tables."""

from __future__ import annotations

import streamlit as st

from pages import heading

heading("Evaluation details")  # first: a cold visit shows the page's heading before the imports below

import pandas as pd

from hybridviz import status
from hybridviz.viz.heatmaps import language_pair_heatmap, matrix_frame


found = [item for item in status.finished_evaluations() if "report" in item]
if not found:
    st.info("No evaluation yet. Run for example `python -m hybridviz evaluate --model me5-small --task xquad-r`.")
    st.stop()

labels = [f"{i['report']['task']} · {i['report']['model']['label']} · {i['path']}" for i in found]
choice = st.selectbox("Evaluation", range(len(found)), format_func=lambda i: labels[i])
report = found[choice]["report"]
metric = st.selectbox("Metric", list(report["matrices"]))

frame = matrix_frame(report, metric)
if frame.isna().all().all():
    st.info(f"No language-pair values for {metric}: the mono and cross settings were not evaluated here.")
else:
    st.plotly_chart(language_pair_heatmap(report, metric), width="stretch")
    st.download_button("Matrix as CSV", frame.to_csv().encode(), file_name=f"{report['task']}-{metric}.csv")

if report["task"] == "mkqa-mteb":
    from hybridviz.paper import CONTAMINATION_NOTE, mteb_mkqa_beside

    st.subheader("MTEB MKQARetrieval: ours beside the reported figures")
    notes = report.get("notes", {})
    st.markdown("Ours: computed here with MTEB's protocol on "
                + ("the official MKQA file." if notes.get("source_format") == "official" else
                   "the **offline MKQA subset** (answer strings for 1,758–2,504 examples per language: the "
                   "corpus is about a third of MTEB's, so the numbers are not comparable one for one).")
                + " Reported: MTEB's published multilingual-e5-small results on the full MKQA, not computed here.")
    beside = mteb_mkqa_beside(report)
    st.dataframe(beside, hide_index=True, width="stretch")
    if "e5" in report["model"].get("label", "").lower() or report["model"].get("spec", "").startswith("me5"):
        st.caption(CONTAMINATION_NOTE)

st.subheader("Per query language")
if report.get("notes", {}).get("unsupported_languages"):
    st.caption(f"Not evaluated: {', '.join(report['notes']['unsupported_languages'])} — "
               f"{report['model'].get('label')} does not support them (left out, not averaged in).")
for setting, res in report["settings"].items():
    if "not_applicable" in res:
        st.caption(f"{setting}: {res['not_applicable']}")
        continue
    table = pd.DataFrame(res["per_language"]).T
    table.loc["macro"] = pd.Series(res["macro"])
    st.markdown(f"**{setting}**")
    st.dataframe(table, width="stretch")
st.caption(f"`{report['provenance']['command']}` · commit {report['provenance']['commit'] or 'unknown'} · "
           f"created {report['provenance']['created']}")
