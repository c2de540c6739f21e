"""Details of one finished evaluation: language-pair heatmap per metric and per-language tables."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hybridviz import status
from hybridviz.viz.heatmaps import language_pair_heatmap, matrix_frame

st.set_page_config(page_title="hybridviz · evaluation details", layout="wide")
st.title("Evaluation details")

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

st.subheader("Per query language")
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
