"""Robustness: does the sampler verdict hold beyond one set-up? One row per result bundle (encoder × training
data × batch × step budget) with its own run-level verdict, and a sentence wherever the rows disagree."""

from __future__ import annotations


import streamlit as st

from pages import heading

heading("Robustness")  # first: a cold visit shows the page's heading before the imports below

import pandas as pd

from hybridviz import dashboard as dash
from hybridviz.experiments.bundle import step_budget_frame
from hybridviz.experiments.curves import (coverage_text, curve_frame, curve_set_up, probe_frame, probe_summary,
                                          regime_text)
from hybridviz.experiments.curves import summary_rows as curve_summary_rows
from hybridviz.experiments.robustness import (SAMPLERS, budget_changes, bundle_name, disagreements,
                                               robustness_rows, twin_key)
from hybridviz.experiments.verdict import ALPHA
from hybridviz.viz.comparison import (forest_plot, learning_curve_bands, setup_forest_frame, step_budget_lines,
                                      step_budget_set_up)
from hybridviz.viz.style import METRIC_LABELS, TASK_LABELS, group_label
from hybridviz.viz.tables import robustness_table


st.markdown("Each result bundle in `cache/reference/` (and each study of yours, `study:<name>`) is one set-up: "
            "an encoder fine-tuned on one training mix with one batch size and step budget, every sampler over "
            "several seeds. Each row is that bundle's own "
            "verdict among the samplers (the training run as the unit, as on the Overview); on monolingual rows "
            "the '− base' columns are each sampler's Δ against that bundle's own base model, the cost of "
            "fine-tuning on monolingual retrieval.")
dash.image_format()
progress = dash.PageProgress("Robustness", [1, 2, 2, 3])  # a cold visit reads every bundle: behind a bar
progress.next("reading the result bundles")
found = dash.all_bundles()
bundles = [b for b in found if set(SAMPLERS) & set(b.groups())]
for stale in bundles:  # a summary of older statistics gives no row: say so, with the command
    dash.outdated_summary_notice(stale)
progress.next("each set-up's verdict")
rows = robustness_rows(bundles, labels=group_label)
if not rows:
    st.info("No bundle with a run-level sampler verdict yet. A set-up is one grid, e.g. "
            "`python -m hybridviz experiment --out cache/reference/robustness-muse --model muse --precision fp32 "
            "--train-precision fp32 --methods none --sampler-method none`.")
else:  # the verdict sections; the learning curves and step-budget checks below stand without a verdict
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    task = dash.param_select("Benchmark", tasks, "task", format_func=lambda t: TASK_LABELS.get(t, t))
    chosen = [r for r in rows if r["task"] == task]
    st.subheader(f"Verdict per set-up · {TASK_LABELS.get(task, task)}")
    if len(bundles) < 2:
        st.info("Only one set-up so far: nothing to compare it with yet.")
    conflicts = disagreements(chosen, labels=group_label)
    if conflicts:
        st.warning("The set-ups disagree:\n" + "\n".join(f"- {c}" for c in conflicts))
    elif len({r["bundle"] for r in chosen}) > 1:
        st.success("The set-ups do not contradict each other on this benchmark: no two name different detectable "
                   "winners, and no detectable winner ranks last elsewhere.")
    for extent in dict.fromkeys(f"{bundle_name(b)}: {dash.training_extent(b)['text']}" for b in bundles):
        st.caption(extent)
    changes = budget_changes(chosen, labels=group_label)
    twins = ({twin_key(r) for r in chosen if r["early_stopped"]}
             & {twin_key(r) for r in chosen if not r["early_stopped"]})
    if changes:
        st.warning("The verdict changes with the training budget (a 100-step bundle against its converged twin):\n"
                   + "\n".join(f"- {c}" for c in changes))
    elif twins:
        st.success("Every verdict on this benchmark is the same at 100 steps and at convergence (early-stopped twins).")
    else:
        st.info("No set-up has a converged (early-stopped) twin yet: every verdict here is a claim about its own short "
                "budget (the captions say how far each trained).")
    table = robustness_table(chosen)
    dash.full_table(table)
    st.download_button("CSV", table.to_csv(index=False).encode(), f"robustness-{task}.csv", "text/csv")

    progress.next("one comparison across set-ups")
    st.subheader("One comparison across set-ups")
    cells = list(dict.fromkeys((r["setting"], r["metric"]) for r in chosen))
    cell = dash.param_select("Cell", cells, "cell", format_func=lambda c: f"{c[0]} {METRIC_LABELS.get(c[1], c[1])}")
    a = dash.param_select("Comparator (a)", list(SAMPLERS), "a", default="x-y", format_func=group_label)
    b = dash.param_select("Method (b)", list(SAMPLERS), "b", default="hybrid", format_func=group_label)
    names = [bundle_name(x) for x in bundles]
    forest = (setup_forest_frame(bundles, a, b, cell[1], ALPHA, task, cell[0], names=names) if a != b
              else pd.DataFrame())
    if a == b:
        st.info("Pick two different samplers.")
    elif forest.empty:
        st.info("No set-up has this comparison.")
    else:
        dash.chart(forest_plot(forest, a, b, cell[1]), forest, f"robustness-{task}-{cell[0]}-{cell[1]}-{b}-minus-{a}")
    with st.expander("How to read it"):
        st.markdown("A row says *ahead* only where that bundle's family-adjusted p is below .05 (Holm in the "
                    "primary family, Benjamini–Hochberg otherwise), p being the larger of the t-based and the exact "
                    "permutation p of the runs (a bundle of 3 seeds cannot go below .1: no sampler is ever *ahead* "
                    "there). Otherwise the row says *equivalent within ±m* (TOST against its plan's margin), *not "
                    "equivalent* (the interval lies outside ±m) or *undetermined* with the minimum detectable effect; "
                    "the `plan` column names the analysis plan it was read under. The margin's interval is its own. "
                    "Set-ups differ in encoder, training data, batch and budget at once where their grids do; the "
                    "columns say which. Code: `hybridviz/experiments/robustness.py`, `plan.py`.")

progress.next("the learning curves")
st.subheader("Learning curves to convergence, with seeds")
converged = dash.bundle_learning_curves(found)  # each early-stopped bundle's units: its seeds' curves
curves = dash.learning_curves()
if not converged and not curves:
    st.info("No learning curve yet. An early-stopped bundle records each run's held-out curve (`python -m hybridviz "
            "experiment --early-stopping ...`); `python -m hybridviz curves --out cache/reference/curves-me5-mlqa-r` "
            "trains each sampler and seed to a maximum budget, scoring held-out paragraphs along the way.")
for name, state in {**converged, **curves}.items():
    frame = curve_frame(state)
    dash.chart(learning_curve_bands(frame, curve_set_up(name, state)), frame,
               f"curves-{name}".replace(":", "-") if state.get("source") == "bundle" else name)
    st.caption(f"Seeds along the run: {coverage_text(frame, group_label)}.")
    st.dataframe(pd.DataFrame(curve_summary_rows(state)), hide_index=True, width="stretch")
    sample = next((p.get("sample") for r in state["runs"].values() for p in r.get("probes", [])), None)
    if sample:
        st.caption(f"XQuAD-R sample ({sample}) at the probe steps and the best checkpoint, over the seeds that "
                   "reached each (reported, never used to choose): multilingual mAP on this sample is not "
                   "XQuAD-R's (whose pool is every paragraph); it shows the direction along the run.")
        st.dataframe(pd.DataFrame(probe_summary(state)), hide_index=True, width="stretch")
        with st.expander("XQuAD-R sample per run"):
            st.dataframe(probe_frame(state), hide_index=True, width="stretch")
    st.caption(regime_text(state))

st.subheader("Step-budget checks at 100 and 300 steps (the 100-step bundles)")
budgets = dash.step_budgets()
if not budgets:
    st.info("No step-budget check yet: `python -m hybridviz budget` (the sampler grid's set-up) or, for another "
            "set-up, e.g. `python -m hybridviz budget --model muse --batch-size 100 --mixed-precision fp32 "
            "--out cache/reference/step-budget-muse`.")
for name, state in budgets.items():
    frame = step_budget_frame(state)
    dash.chart(step_budget_lines(frame, state.get("provenance", {}).get("seed"), step_budget_set_up(state)), frame,
               name)
    changed = [s for s, c in state.get("ranking_changes", {}).items() if c]
    if frame.loc[frame["sampler"] != "base", "sampler"].nunique() < 2:
        st.caption(f"{name}: one sampler, a learning curve only; no order of samplers to compare between budgets.")
    else:
        st.caption(f"{name}: the samplers' order on the held-out groups changes between budgets for "
                   f"{', '.join(changed) if changed else 'no setting'}.")
progress.close()
