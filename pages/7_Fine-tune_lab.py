"""Fine-tune lab: start a fine-tune in the background (one at a time on this CPU, others queue), follow its
progress, ETA and loss curve (they survive a reload), cancel it; a finished run is evaluated automatically and
appears on every other page."""

from __future__ import annotations


import streamlit as st

from pages import heading

heading("Fine-tune lab")  # first: a cold visit shows the page's heading before the imports below

import importlib
import sys
import time
import pandas as pd
import plotly.express as px

from hybridviz import dashboard as dash
from hybridviz.data.lareqa import BENCHMARKS
from hybridviz.errors import HybridvizError
from hybridviz.tasks import DEFAULT_EVALUATIONS
from hybridviz.training.data import MAX_JSONL_BYTES, save_upload
from hybridviz.training.runs import list_runs
from hybridviz.viz.style import TASK_LABELS

# the training stack (torch, sentence-transformers) takes seconds to import on a cold server: imported here,
# after the heading, behind a bar, and its three modules taken from it by name
if "sentence_transformers" not in sys.modules:  # a cold server: ~5 s of imports, shown as they happen
    STACK = [("torch", 3), ("transformers", 2), ("sentence_transformers", 2), ("hybridviz.training.trainer", 1)]
    progress = dash.StepProgress("Loading the training stack", [w for _, w in STACK])
    for module, _ in STACK:
        progress.begin(f"importing {module}")
        importlib.import_module(module)
        progress.end()
    progress.close()
lab = importlib.import_module("hybridviz.experiments.lab")
SAMPLERS = importlib.import_module("hybridviz.training.samplers").SAMPLERS
TrainConfig = importlib.import_module("hybridviz.training.trainer").TrainConfig
MLQA_R_LANGUAGES = BENCHMARKS["mlqa-r"]["languages"]  # the default training data's languages

st.markdown("Runs train in a separate process through `hybridviz.training` (not inside this page), one at a "
            f"time; up to {lab.MAX_WAITING} more wait in a queue; then each is evaluated automatically.")


def measured_sentence(measured: dict) -> str:
    """The time figures measured on this machine by the last lab runs (never written by hand)."""
    if not measured["runs"]:
        return ("No lab run has finished on this machine yet, so there are no measured times: the first run's "
                "progress bar shows its own ETA.")
    parts = []
    if measured["step_s"] is not None:
        parts.append(f"{measured['step_s']:.2f} s per training step")
    if measured["eval_s"]:
        parts.append("evaluation " + ", ".join(f"{TASK_LABELS.get(t, t)} {s / 60:.1f} min"
                                               for t, s in measured["eval_s"].items()))
    return f"Measured on this machine (median of the last {measured['runs']} lab runs): " + "; ".join(parts) + "."


st.caption(measured_sentence(lab.measured_times()))

defaults = TrainConfig()
# plain widgets, no st.form: pressing Enter in a box (Steps, ...) only commits its value; only the button submits
with st.container(border=True):
    c1, c2, c3, c4 = st.columns(4)
    sampler = c1.selectbox("Sampler", SAMPLERS, index=SAMPLERS.index("hybrid"), key="sampler")
    alpha = c1.number_input("α (hybrid: share of X-X-mono batches)", 0.0, 1.0, 0.5, 0.05)
    steps = c2.number_input("Steps", 1, 100_000, defaults.steps, key="steps")
    batch = c2.number_input("Batch size", 2, 1_000_000, defaults.batch_size, key="batch")
    lr = c3.number_input("Learning rate", 1e-7, 1e-2, defaults.learning_rate, format="%.1e")
    temperature = c3.number_input("Temperature τ", 0.001, 10.0, defaults.temperature, format="%.3f")
    seed = c4.number_input("Seed", 0, 10_000, 0)
    languages = c4.multiselect(f"Training languages (empty = all {len(MLQA_R_LANGUAGES)} of MLQA-R)",
                               MLQA_R_LANGUAGES, key="languages")
    with st.expander("Advanced"):
        models = ["me5-small", "tiny"]
        model = st.selectbox("Model", models, key="model",
                             index=models.index(st.query_params.get("model", "me5-small"))
                             if st.query_params.get("model") in models else 0, format_func=lambda m: {
            "me5-small": "me5-small (offline multilingual-e5-small)",
            "tiny": "tiny random BERT (checks the pipeline in seconds; results are meaningless)"}[m])
        warmup = st.number_input("Warm-up steps", 0, 5000, defaults.warmup_steps)
        upload = st.file_uploader(
            "Own training data instead of MLQA-R (JSON lines {id, lang, query, positive}; rows sharing an id are "
            f"parallel; at most {MAX_JSONL_BYTES // 1_000_000} MB)", type=["jsonl"], key="upload")
        # preset from the URL like the model (?tasks=mkqa-answers): a quick check evaluates on one benchmark
        task_names = [e["task"] for e in DEFAULT_EVALUATIONS]
        preset = [t for t in st.query_params.get_all("tasks") if t in task_names]
        tasks = st.multiselect("Evaluate on", task_names, key="tasks", default=preset or task_names,
                               format_func=lambda t: TASK_LABELS.get(t, t))
    submitted = st.button("Start fine-tune", type="primary", key="start")

if submitted:
    config = TrainConfig(model=model, sampler=sampler, alpha=float(alpha), steps=int(steps), batch_size=int(batch),
                         learning_rate=float(lr), warmup_steps=min(int(warmup), int(steps)),
                         temperature=float(temperature), seed=int(seed), train_languages=languages or None,
                         freeze_word_embeddings=model != "tiny")
    try:
        if upload is not None:
            config.train_data = str(save_upload(upload.getvalue()))
        run = lab.submit(config, tasks=tasks)
        st.success(f"Queued {run.id}.")
    except lab.AlreadyQueued as exc:  # the same settings submitted again: nothing to do
        st.info(f"{exc} One worker runs it; follow it below.")
    except HybridvizError as exc:
        st.error(str(exc))


@st.fragment(run_every=2)
def live() -> None:
    lab.reconcile_evaluations()  # a worker killed while it evaluated: failed, with the reason (and reaped)
    runs = [r for r in list_runs() if (r.dir / "lab.json").exists()]
    measured = lab.measured_times()
    if not runs:
        st.info("No lab run yet: fill in the form above and press **Start fine-tune**.")
        return
    waiting = [r.id for r in lab.queue()]
    runs.sort(key=lambda r: lab.lab_info(r).get("submitted", 0), reverse=True)
    for run in runs:
        status = run.status()
        state = status.get("state", "unknown")
        evaluation = lab.evaluation_state(run)
        cfg = run.config()
        title = (f"{run.id} · {cfg.get('sampler')} α={cfg.get('alpha')} · {cfg.get('steps')} steps · {state}"
                 + (f" · evaluation {evaluation.get('state')}" if evaluation else ""))
        with st.expander(title, expanded=state in ("queued", "running") or evaluation.get("state") == "evaluating"):
            if state == "queued":
                position = waiting.index(run.id) + 1 if run.id in waiting else "?"
                st.write(f"Waiting for the training slot: position {position} in the queue.")
            if state in ("running", "done", "cancelled", "failed"):
                st.progress(float(status.get("progress", 0.0)),
                            text=f"step {status.get('step', 0)}/{status.get('total_steps', cfg.get('steps'))}"
                                 + (f" · ETA {status.get('eta_s', 0):.0f} s" if state == "running" else ""))
            if state == "failed":
                st.error(status.get("error", "failed"))
            log = run.train_log()
            if log:
                frame = pd.DataFrame(log)
                st.plotly_chart(px.line(frame, x="step", y="loss", title="training loss (InfoNCE)", height=260),
                                width="stretch", key=f"loss-{run.id}")
            if evaluation.get("samples"):
                full = evaluation.get("state") == "done"
                st.markdown(f"**Sample** — a seeded sample of {lab.SAMPLE_QUESTIONS} questions per benchmark "
                            "(XQuAD-R and MLQA-R: whole paragraphs, their questions against their own sentences, "
                            "so the figures run higher than the whole pool's; custom sets keep their whole pool), "
                            "evaluated first: "
                            + ("indicative only; the full evaluation below is the result." if full
                               else "first figures while the full evaluation follows."))
                st.dataframe(pd.DataFrame([{"benchmark": TASK_LABELS.get(t, t), **v}
                                           for t, v in evaluation["samples"].items()]), hide_index=True)
            if evaluation.get("state") == "evaluating" and evaluation.get("phase") == "sample":
                st.write(f"Evaluating a sample of {evaluation.get('task')} ({lab.SAMPLE_QUESTIONS} questions, "
                         "seeded) first; the full evaluation follows…")
            if evaluation.get("state") == "evaluating" and evaluation.get("phase") != "sample":
                st.write(f"Evaluating {evaluation.get('task')} ({len(evaluation.get('done', []))}/"
                         f"{evaluation.get('total')} benchmarks done)…")
                if evaluation.get("to_encode"):
                    share = evaluation["encoded"] / evaluation["to_encode"]
                    spent = time.time() - evaluation.get("stage_started", time.time())
                    eta = spent / share * (1 - share) if share > 0 else None
                    st.progress(min(share, 1.0), text=f"{evaluation.get('stage')}: {evaluation['encoded']:,} of "
                                                      f"{evaluation['to_encode']:,} texts"
                                                      + (f" · ETA {eta:.0f} s" if eta is not None else ""))
            if evaluation.get("state") == "evaluating":
                whole = lab.evaluation_eta(evaluation, measured)
                st.caption(f"Whole evaluation: about {whole / 60:.1f} min left (this machine's measured times)"
                           if whole is not None else "Whole evaluation: no estimate until each benchmark has been "
                                                     "evaluated once on this machine.")
            if evaluation.get("state") == "failed":
                st.error(f"Evaluation failed: {evaluation.get('error')}")
            elif evaluation.get("state") == "cancelled":
                st.warning(f"Evaluation cancelled: {evaluation.get('error')}")
            elif evaluation.get("state") == "done":
                st.success("Evaluated: it appears on the other pages as "
                           f"`lab:{run.id}`. Done: {', '.join(evaluation.get('done', []))}.")
            if (state in ("queued", "running") or evaluation.get("state") == "evaluating") and st.button(
                    "Cancel", key=f"cancel-{run.id}"):
                st.toast(f"{run.id}: {lab.cancel(run)}")


live()
