"""Study: your own sampler comparison, run from the dashboard. Choose the model, the training data, the evaluation
sets (built-in or your own BEIR folder), the samplers, α values, seeds and budget; the whole grid runs as one
background job (experiments/study.py over the grid code) into cache/studies/<name>/, a result bundle every page
reads as soon as each sampler has two finished runs. The units run one after another in the study's worker, or as
tasks of a Ray cluster (local, or at an address): progress.json shows each unit's state and node."""

from __future__ import annotations

import streamlit as st

from pages import heading

heading("Study")  # first: a cold visit shows the page's heading before the imports below

import time

import pandas as pd

from hybridviz.data import paths
from hybridviz.data.train_extra import LOADERS
from hybridviz.errors import HybridvizError
from hybridviz.experiments import study
from hybridviz.results.store import sweep_choice
from hybridviz.tasks import DEFAULT_EVALUATIONS
from hybridviz.training.data import MAX_JSONL_BYTES, save_upload
from hybridviz.training.runs import list_runs
from hybridviz.viz.style import SAMPLER_ORDER, TASK_LABELS

SAMPLERS = [s for s in SAMPLER_ORDER if s != "base"]
OTHER = "another model (a local sentence-transformers folder, or hf:<name> when online)"

st.markdown(
    "Run the batch-composition comparison on **your** set-up: the base model and one fine-tune per sampler and "
    "seed, every model evaluated on your evaluation sets, with run-level tests over the seeds. The whole grid runs "
    "as **one background job** (the `experiment` command's grid code), one study at a time on this machine; "
    "fine-tunes share the Fine-tune lab's training slot. The study is a result bundle in `cache/studies/<name>/`: "
    "it joins the **Result bundle** selector of every page as soon as each sampler has two finished runs, its "
    "verdict marked *partial* until the study is complete.")


def _parse_numbers(text: str, kind, what: str) -> list:
    try:
        return [kind(x) for x in text.replace(";", ",").split(",") if x.strip()]
    except ValueError:
        raise HybridvizError(f"{what}: {text!r} is not a comma-separated list of numbers.") from None


@st.fragment(run_every=2)
def studies() -> None:
    study.reconcile()  # a worker that died (killed, server restarted): failed, with the reason, and resumable
    names = study.list_studies()
    if not names:
        st.info("No study yet: fill in the form below and press **Start study**.")
        return
    for name in names:
        info = study.progress(name)
        status = info["status"]
        state = status.get("state", "unknown")
        folder = study.study_dir(name)
        eta = info["eta_s"]
        title = f"{name} · {state} · {info['done']}/{info['total']} units" + (
            f" · ETA {eta / 60:.0f} min" if eta is not None and eta >= 90 else f" · ETA {eta:.0f} s" if eta else "")
        with st.expander(title, expanded=state in study.ACTIVE or name == st.session_state.get("last_study")):
            share = info["done"] / info["total"] if info["total"] else 0.0
            st.progress(share, text=f"{info['done']} of {info['total']} units done"
                        + (f" · about {eta:.0f} s left (from the finished units' wall time)" if eta is not None
                           else " · ETA once a base and a fine-tune unit have finished" if state in study.ACTIVE
                           else ""))
            if state in study.ACTIVE and status.get("current"):
                st.caption(f"Now: {status['current']}")
            if state == "failed":
                st.error(f"Failed: {status.get('error')}")
            elif state == "cancelled":
                st.warning(f"Cancelled ({status.get('error', '')}). Finished units are kept.")
            elif state == "done":
                st.success("Complete.")
            executor = info.get("executor", {})
            st.caption("Units run " + ("one after another in the study's worker (serial)" if executor.get("kind") !=
                                       "ray" else f"as tasks of a Ray cluster ({executor.get('address') or 'local'}"
                                       f", {executor.get('cpus_per_unit', 2):g} CPUs per unit)") + ".")
            columns = ["unit", "sampler", "seed", "alpha", "state", "where", "wall_s"]
            columns += [c for c in ("attempt", "error") if any(r.get(c) not in (None, "", 1) for r in info["units"])]
            frame = pd.DataFrame(info["units"])
            st.dataframe(frame[[c for c in columns if c in frame]], hide_index=True, width="stretch")
            if study.visible(folder):
                st.markdown(f"Open it on the [Overview](/?bundle=study:{name}) or any page: **Result bundle** → "
                            f"`study:{name}`" + (" (*partial*)." if state != "done" else "."))
            else:
                counts = study.finished_runs(folder)
                st.caption("It joins the bundle selector once each sampler has 2 finished runs (now: "
                           + ", ".join(f"{s} {n}" for s, n in counts.items()) + ").")
            c1, c2 = st.columns(2)
            if state in study.ACTIVE and c1.button("Cancel", key=f"cancel-{name}"):
                st.toast(study.cancel(name))
            if state in ("failed", "cancelled") and c1.button("Resume", key=f"resume-{name}", type="primary"):
                try:
                    study.resume(name)
                    st.toast(f"{name}: resumed; finished units are kept")
                except HybridvizError as exc:
                    st.error(str(exc))
            log = folder / study.LOG
            if log.exists():
                with c2.popover("Log"):
                    st.code("\n".join(log.read_text(errors="replace").splitlines()[-40:]) or "(empty)")


st.subheader("Studies")
studies()

st.subheader("New study")
# (the defaults are TrainConfig's, the grid's too; the page does not import the training stack to read them)
# any field may be preset from the URL (?model=tiny&samplers=x-y&samplers=hybrid&seeds=0,1&steps=3&custom=<folder>),
# so a study can be shared as a link; the button still submits it
preset = st.query_params


def preset_number(key: str, default):
    try:
        return type(default)(preset.get(key, default))
    except ValueError:
        return default


# plain widgets, no st.form: pressing Enter in a box only commits its value; only the button submits
c1, c2 = st.columns(2)
name = c1.text_input("Study name (the folder cache/studies/<name>)", preset.get("name", ""), key="name",
                     placeholder="e.g. my-retriever-de-fr")
runs = [f"run:{r.id}" for r in list_runs() if r.status().get("state") == "done" and r.model_dir.is_dir()]
choices = ["me5-small", "muse", "tiny", *runs, OTHER]
model = c1.selectbox("Model to fine-tune", choices, key="model",
                     index=choices.index(preset["model"]) if preset.get("model") in choices else 0,
                     format_func=lambda m: {
    "me5-small": "me5-small (offline multilingual-e5-small, the default)",
    "muse": "muse (offline multilingual USE v3; fp32)",
    "tiny": "tiny random BERT (checks the pipeline in seconds; results are meaningless)"}.get(m, m))
if model == OTHER:
    model = c1.text_input("Model folder or hf:<name>", key="model_path").strip()
sources = ["mlqa-r", *LOADERS]
train_data = c2.selectbox("Training data (built-in)", sources, key="train_data")
upload = c2.file_uploader(
    "…or your own pairs instead (JSON lines {id, lang, query, positive}; rows sharing an id are parallel; at most "
    f"{MAX_JSONL_BYTES // 1_000_000} MB)", type=["jsonl"], key="upload")
train_languages = c2.text_input("Training languages (comma-separated codes; empty = all of the data)",
                                preset.get("languages", ""), key="train_languages")

c1, c2 = st.columns(2)
task_names = [e["task"] for e in DEFAULT_EVALUATIONS]
builtin = c1.multiselect("Built-in evaluation sets", task_names, key="tasks",
                         default=[t for t in preset.get_all("tasks") if t in task_names] if "tasks" in preset
                         else ["xquad-r"],
                         format_func=lambda t: TASK_LABELS.get(t, t))
custom = c1.text_area("Your evaluation sets: one BEIR folder per line (corpus.jsonl, queries.jsonl, "
                      "qrels/test.tsv), written as a path or beir:<path>", "\n".join(preset.get_all("custom")),
                      key="custom", height=80)
limit = c1.number_input("Questions per evaluation set (a seeded sample; 0 = all)", 0, 1_000_000,
                        preset_number("limit", 0), key="limit")
samplers = c2.multiselect("Samplers", SAMPLERS, key="samplers",
                          default=[s for s in preset.get_all("samplers") if s in SAMPLERS] or SAMPLERS)
alphas = c2.text_input("α values (the first: the hybrid runs'; more: an α sweep on the first seed)",
                       preset.get("alphas", "0.5"), key="alphas")
seeds = c2.text_input("Seeds (at least two: the verdict is a test over runs)", preset.get("seeds", "0, 1, 2"),
                      key="seeds")

c1, c2, c3, c4 = st.columns(4)
steps = c1.number_input("Steps (the budget; with early stopping, the maximum)", 1, 100_000,
                        preset_number("steps", 100), key="steps")
batch = c2.number_input("Batch size", 2, 1_000_000, preset_number("batch", 32), key="batch")
# the model's own held-out sweep where it has one (as `experiment` does), else TrainConfig's defaults
chosen, sweep_file = sweep_choice(model)
lr = c3.number_input("Learning rate", 1e-7, 1e-2, preset_number("lr", float(chosen.get("learning_rate", 3e-5))),
                     format="%.1e", key=f"lr:{model}")
warmup = c4.number_input("Warm-up steps", 0, 5000, preset_number("warmup", int(chosen.get("warmup_steps", 0))),
                         key=f"warmup:{model}")
c3.caption(f"Defaults from `{sweep_file.parent.name}` (the held-out sweep)" if chosen else
           f"No learning-rate sweep for {model or 'this model'}: the trainer's defaults "
           f"(`python -m hybridviz sweep --model <m> --out {sweep_file.parent}` makes one)")
early = c1.checkbox("Early stopping (hold out 20 % of the training groups, keep the best checkpoint)", key="early")
eval_steps = c2.number_input("validate every … steps", 1, 10_000, 100, key="eval_steps", disabled=not early)
patience = c3.number_input("patience (validations without a gain)", 1, 100, 5, key="patience", disabled=not early)

c1, c2, c3 = st.columns(3)
executor_kind = c1.selectbox(
    "Where the units run", ["serial", "ray"], key="executor",
    index=1 if preset.get("executor") == "ray" else 0,
    format_func=lambda k: {"serial": "one after another in the study's worker (default)",
                           "ray": "as tasks of a Ray cluster (docs/cluster.md)"}[k])
ray_address = c2.text_input("Ray cluster address (auto or host:port; empty: a local cluster on this machine)",
                            preset.get("ray_address", ""), key="ray_address", disabled=executor_kind != "ray")
ray_cpus = c3.number_input("CPUs per unit (Ray)", 1, 256, preset_number("ray_cpus", 2), key="ray_cpus",
                           disabled=executor_kind != "ray")

if st.button("Start study", type="primary", key="start"):
    try:
        tasks = builtin + [line.strip() if line.strip().startswith("beir:") else f"beir:{line.strip()}"
                           for line in custom.splitlines() if line.strip()]
        data = train_data
        with st.spinner("Checking the model, the data and every evaluation set…"):
            name = study.check_name(name)
            if upload is not None:
                data = str(save_upload(upload.getvalue()))
            spec = study.build_spec(
                model=model, tasks=tasks, samplers=samplers, seeds=_parse_numbers(seeds, int, "Seeds"),
                alphas=_parse_numbers(alphas, float, "α values"), steps=int(steps), train_data=data,
                train_languages=[x.strip() for x in train_languages.split(",") if x.strip()] or None,
                limit=int(limit) or None, batch_size=int(batch), learning_rate=float(lr),
                warmup_steps=None if early and not warmup else int(warmup), early_stopping=early,
                eval_steps=int(eval_steps), patience=int(patience))
            from hybridviz.experiments.executors import make_executor

            executor = None if executor_kind == "serial" else make_executor(
                "ray", address=ray_address, cpus_per_unit=float(ray_cpus))
            study.submit(name, spec, executor=executor)
        st.session_state["last_study"] = name
        st.success(f"Study {name!r} queued: {len(spec.samplers)} samplers × {len(spec.seeds)} seeds, "
                   f"{len(spec.evaluations)} evaluation set(s). Follow it above.")
    except study.StudyBusy as exc:
        st.warning(str(exc))
    except HybridvizError as exc:
        st.error(str(exc))
st.caption(f"Studies live in `{paths.STUDIES_DIR}`; each is resumable (a restarted server offers Resume). "
           f"Updated {time.strftime('%H:%M:%S')}.")
