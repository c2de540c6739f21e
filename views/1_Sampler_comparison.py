"""Sampler comparison: per-seed dots with mean ± std per benchmark, per query language split seen / unseen,
and the α sweep."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hybridviz import dashboard as dash
from hybridviz.viz.comparison import alpha_line, per_language_bars, per_language_frame, sampler_dots, seed_frame
from hybridviz.viz.style import METRIC_LABELS, TASK_LABELS

bundle = dash.bundle_page("Sampler comparison")

tasks = bundle.tasks()
chosen = dash.param_multiselect("Benchmarks", tasks, "tasks", default=tasks)
setting = dash.param_select("Setting", ["multi", "cross", "mono"], "setting")
metrics = ["mAP", "MRR", "nDCG@10", "R@1", "R@10"] + (["max_rank_distance", "same_lang@10", "rank_corr"]
                                                      if setting == "multi" else [])
metric = dash.param_select("Metric", metrics, "metric", format_func=lambda m: METRIC_LABELS.get(m, m))
if not chosen:
    st.info("Pick at least one benchmark.")
    st.stop()

results = dash.results_with_lab(bundle)
frame = seed_frame(results, chosen, setting, metric)
if frame.empty:
    st.info(f"No {setting} values for these benchmarks (MKQA queries has no monolingual setting: a query's only "
            "same-language item is itself).")
else:
    dash.chart(sampler_dots(frame, setting, metric), frame, f"samplers-{setting}-{metric}")

st.subheader("Per query language")
task = dash.param_select("Benchmark for the language view", chosen, "lang_task",
                         format_func=lambda t: TASK_LABELS.get(t, t))
per_lang = per_language_frame(bundle, results, task, setting, metric)
if per_lang.empty:
    st.info(f"No per-language {METRIC_LABELS.get(metric, metric)} for {TASK_LABELS.get(task, task)} · {setting}.")
else:
    dash.chart(per_language_bars(per_lang, task, setting, metric), per_lang, f"per-language-{task}-{setting}")
    st.caption("Seen = a language of the MLQA-R training pairs; unseen languages test zero-shot transfer "
               "to languages the fine-tune never saw.")

st.subheader("α sweep")
points = bundle.summary.get("alpha_sweep", [])
if len(points) < 2:
    st.info("The α sweep has fewer than two points in this bundle yet; the grid trains them last "
            f"(`{dash.GRID_COMMAND}`).")
else:
    dash.chart(alpha_line(points), pd.DataFrame(points), "alpha-sweep")
dash.provenance_caption(bundle)
