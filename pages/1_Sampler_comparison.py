"""Sampler comparison: per-seed dots with mean ± std per benchmark, per query language split seen / unseen,
the α sweep and the step-budget check."""

from __future__ import annotations

import streamlit as st

from pages import heading

heading("Sampler comparison")  # first: a cold visit shows the page's heading before the imports below

import pandas as pd

from hybridviz import dashboard as dash
from hybridviz.experiments.bundle import BundleError, seen_languages, step_budget_frame
from hybridviz.experiments.verdict import ALPHA
from hybridviz.tasks import SETTINGS
from hybridviz.viz.comparison import (alpha_line, forest_frame, forest_plot, not_applicable, per_language_bars,
                                      per_language_frame, sampler_dots, seed_frame, step_budget_lines)
from hybridviz.viz.style import METRIC_LABELS, SAMPLER_LABELS, TASK_LABELS, group_label, setting_metrics

progress = dash.PageProgress("Sampler_comparison", [2, 1, 2, 1, 8])  # a cold visit draws five charts: a bar
progress.next("reading the result bundle")
bundle = dash.bundle_page(progress=progress)

tasks = bundle.tasks()
chosen = dash.param_multiselect("Benchmarks", tasks, "tasks", default=tasks)
setting = dash.param_select("Setting", list(SETTINGS), "setting", default="multi")
metric = dash.param_select("Metric", setting_metrics(setting), "metric", format_func=lambda m: METRIC_LABELS.get(m, m))
if not chosen:
    progress.close()
    st.info("Pick at least one benchmark.")
    st.stop()

progress.next("the seeds per method")
results = dash.results_with_lab(bundle)
frame = seed_frame(results, chosen, setting, metric)
missing = not_applicable(results, chosen, setting)  # a benchmark without this setting is named, with the reason
for task, reason in missing.items():
    st.caption(f"{TASK_LABELS.get(task, task)} has no {setting} setting: {reason}.")
if frame.empty:
    st.info(f"No {setting} {METRIC_LABELS.get(metric, metric)} values for these benchmarks.")
else:
    dash.chart(sampler_dots(frame, setting, metric), frame, f"samplers-{setting}-{metric}")

progress.next("the effect sizes")
st.subheader("Effect sizes: Δ with 95 % intervals, the run as the unit")
methods = [g for g in bundle.groups() if not g.startswith("hybrid-a")]
fa = dash.param_select("Comparator (a)", methods, "fa", default="x-y" if "x-y" in methods else None,
                       format_func=group_label)
fb = dash.param_select("Method (b)", methods, "fb", default="hybrid" if "hybrid" in methods else None,
                       format_func=group_label)
tested = list(dict.fromkeys(t["metric"] for t in bundle.summary.get("tests", [])))  # the metrics compared
fmetric = dash.param_select("Metric of the effect", tested or ["mAP"], "fmetric",
                            format_func=lambda m: METRIC_LABELS.get(m, m))
forest = forest_frame(bundle.summary, fa, fb, fmetric, ALPHA) if fa != fb else pd.DataFrame()
if dash.outdated_summary_notice(bundle):
    pass
elif fa == fb:
    st.info("Pick two different methods.")
elif forest.empty:
    st.info("The summary has no run-level comparison for this pair; recompute it with "
            "`python -m hybridviz summarise <bundle>`.")
else:
    dash.chart(forest_plot(forest, fa, fb, fmetric), forest, f"forest-{fb}-minus-{fa}-{fmetric}")
with st.expander("What the unit, the test and the correction are"):
    st.markdown("One training run (seed) is the unit: Δ is the mean over b's runs minus the mean over a's runs "
                "(the base is a single run). The 95 % interval is Δ ± t × the standard error of a two-level "
                "bootstrap over runs and clusters of queries (XQuAD-R: the questions of one paragraph; MKQA: all "
                "language versions of a question); colour says better / worse by the metric's direction where the "
                "family-adjusted p is below .05 (the marks' rule: the larger of the t-based and the exact "
                "permutation p of the runs), grey otherwise, even where the interval alone excludes 0; grey rows "
                "say in their data whether the two are equivalent within the plan's margin, not equivalent, or "
                "undetermined (with the minimum detectable effect). Adjusted p: Holm within the primary family "
                "(hybrid vs each pure sampler, multilingual mAP and rank distance, per benchmark), "
                "Benjamini–Hochberg for the rest; all from the bundle's analysis plan. "
                "`hybridviz/experiments/plan.py`, `stats.py`.")

progress.next("per query language")
st.subheader("Per query language")
task = dash.param_select("Benchmark for the language view", [t for t in chosen if t not in missing], "lang_task",
                         format_func=lambda t: TASK_LABELS.get(t, t))
per_lang = per_language_frame(bundle.summary.get("seen_languages") or seen_languages(bundle), results, task, setting, metric)
if task is None:
    st.info(f"None of these benchmarks has a {setting} setting.")
elif per_lang.empty:
    st.info(f"No per-language {METRIC_LABELS.get(metric, metric)} for {TASK_LABELS.get(task, task)} · {setting}.")
else:
    dash.chart(per_language_bars(per_lang, task, setting, metric), per_lang, f"per-language-{task}-{setting}")
    dash.unsupported_languages_note([r for r in results if r.task == task])
    st.caption("Seen = a language of the MLQA-R training pairs; unseen languages test zero-shot transfer "
               "to languages the fine-tune never saw.")

progress.next("the α sweep and the step budget")
st.subheader("α sweep")
points = bundle.summary.get("alpha_sweep", [])
if len(points) < 2:
    st.info("The α sweep has fewer than two points in this bundle yet; the grid trains them last "
            f"(`{dash.GRID_COMMAND}`).")
else:
    dash.chart(alpha_line(points), pd.DataFrame(points), "alpha-sweep")

st.subheader("Step budget")
st.markdown("Does the ranking of the samplers change with more training? Each sampler is trained for each budget "
            "with 20 % of the MLQA-R question groups held out, and scored on those groups (validation data, not "
            "a benchmark).")
try:
    budget = dash.step_budget()
except BundleError as exc:
    st.error(str(exc))
    budget = None
if budget is None:
    st.info("No step-budget check yet. Run it (about an hour on 2 CPU cores; resumable): "
            "`python -m hybridviz budget`")
else:
    frame = step_budget_frame(budget)
    dash.chart(step_budget_lines(frame, budget.get("provenance", {}).get("seed")), frame, "step-budget")
    rankings = budget.get("rankings", {})
    if rankings:
        st.dataframe(pd.DataFrame([{"steps": steps, "setting": setting,
                                    "ranking (best first)": " > ".join(SAMPLER_LABELS.get(s, s) for s in order)}
                                   for steps, by in rankings.items() for setting, order in by.items()]),
                     hide_index=True)
        changed = [s for s, c in budget.get("ranking_changes", {}).items() if c]
        st.caption("The ranking changes between budgets for: " + (", ".join(changed) if changed else "no setting")
                   + ". One seed: gaps smaller than the seed spread above are not evidence either way.")
dash.provenance_caption(bundle)
progress.close()
