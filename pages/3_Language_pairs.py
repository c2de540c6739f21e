"""Language pairs: query-language × candidate-language heatmaps for any model and metric, and the delta between
two samplers with per-cell significance."""

from __future__ import annotations

import streamlit as st

from pages import heading

heading("Language pairs")  # first: a cold visit shows the page's heading before the imports below

from hybridviz import dashboard as dash
from hybridviz.experiments.stats import run_level_possible
from hybridviz.viz.heatmaps import delta_heatmap, frame_heatmap, mean_matrix
from hybridviz.viz.style import TASK_LABELS

bundle = dash.bundle_page()

task = dash.param_select("Benchmark", bundle.tasks(), "task", format_func=lambda t: TASK_LABELS.get(t, t))
results = dash.results_with_lab(bundle, task)
groups = dash.groups_of(results)
metrics = sorted({m for r in results for m in r.metrics.get("matrices", {})},
                 key=lambda m: (m.startswith("multi"), m != "mAP", m))
metric = dash.param_select("Metric", metrics, "metric")

st.subheader("One sampler")
group = dash.param_select("Sampler (mean over its seeds)", groups, "group",
                          default="hybrid" if "hybrid" in groups else None)
chosen = [r for r in results if r.group == group]
matrix = mean_matrix(chosen, metric)
if matrix.empty or matrix.isna().all().all():
    st.info(f"No language-pair values for {metric} here (MKQA queries has no monolingual diagonal).")
else:
    title = (f"{metric} · {TASK_LABELS.get(task, task)} · {group} (mean of {len(chosen)} "
             f"seed{'s' if len(chosen) > 1 else ''}; mono on the diagonal, cross off it)")
    dash.chart(frame_heatmap(matrix, metric, title), matrix.reset_index(), f"pairs-{task}-{group}-{metric}")
    dash.unsupported_languages_note(chosen)

st.subheader("Difference between two samplers")
a = dash.param_select("Baseline (a)", groups, "a", default="x-x-mono" if "x-x-mono" in groups else None)
b = dash.param_select("Compared (b)", groups, "b", default="hybrid" if "hybrid" in groups else None)
if a == b:
    st.info("Pick two different samplers to see their difference.")
elif not run_level_possible([r.seed for r in results if r.group == a], [r.seed for r in results if r.group == b]):
    st.info(f"{a} and {b} have one run each and one of them was trained: its seed's effect cannot be told from "
            "the checkpoint's, so there is no run-level comparison to map. Pick a sampler with several seeds.")
else:
    cells = dash.delta_cells(tuple(str(r.folder) for r in results if r.group == a),
                             tuple(str(r.folder) for r in results if r.group == b))
    if not cells:
        st.info("These models have no per-pair per-query file (per_query_pairs.npz); re-evaluate them with "
                "the current version to compare cells.")
    else:
        fig = delta_heatmap(cells, a, b, f"Δ AP (b − a) · {TASK_LABELS.get(task, task)} · {b} − {a}; "
                                         "* adjusted p<0.05, ** <0.01, *** <0.001 (runs as the unit, BH over the cells)")
        data = cells["delta"].stack().rename("delta").reset_index()
        for key, name in (("ci_low", "ci_low"), ("ci_high", "ci_high"), ("p", "p"), ("p_adjusted", "p_adjusted"),
                          ("n", "queries")):
            data = data.merge(cells[key].stack().rename(name).reset_index())
        dash.chart(fig, data, f"delta-{task}-{b}-minus-{a}")
        st.caption("Δ is the mean over each sampler's runs of the cell's AP (queries of the row language "
                   "against the column language's pool); the delta map is for AP (per-query values are stored "
                   "for AP only).")
    with st.expander("What the unit, the test and the correction are"):
        st.markdown("Each cell compares the two samplers with the training run (seed) as the unit: a two-level "
                    "bootstrap over runs and question clusters gives the standard error, the p-value uses t on "
                    "the runs' degrees of freedom, and the cells of one map are a secondary family, corrected "
                    "by Benjamini–Hochberg. Stars mark adjusted p; no star: no detectable difference. The cells "
                    "use the t-based p and question clusters (not the analysis plan's marks rule or paragraph "
                    "clusters of the headline comparisons): read them as a map, not a verdict. "
                    "`hybridviz/experiments/bundle.py: delta_cells`.")
dash.provenance_caption(bundle)
