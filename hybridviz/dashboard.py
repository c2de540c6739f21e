"""What the Streamlit pages share: cached loaders, URL-synced widgets, downloads and empty states.

Pages stay thin: they pick, call this module and `hybridviz.viz`, and draw. Frames are cached with
`st.cache_data` (keyed by file modification times, so a finished grid unit or lab run shows up on the next
rerun), models and indexes with `st.cache_resource`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from hybridviz.data import paths
from hybridviz.experiments import bundle as bundle_module
from hybridviz.experiments.answers import counterparts
from hybridviz.experiments.bundle import Bundle, BundleError, find_bundles, load_bundle
from hybridviz.viz.style import SAMPLER_LABELS, chart_config

GRID_COMMAND = "python -m hybridviz experiment --out cache/reference/sampler-grid"
MAIN_BUNDLE = paths.MAIN_BUNDLE


class StepProgress:
    """A progress bar with an ETA over weighted steps: `begin(what)` before a step, `end()` after it; the estimate
    is the time per unit of weight so far times the weight left, so it appears once the first step is done. A warm
    visit (every step cached) removes the bar at once."""

    def __init__(self, label: str, weights: list[float]):
        self.label, self.weights = label, [float(w) for w in weights]
        self.total, self.done, self.step, self.open = sum(self.weights) or 1.0, 0.0, 0, False
        self.start = time.perf_counter()
        self.bar = st.progress(0.0, text=f"{label}…")

    def _text(self, what: str) -> str:
        if self.done <= 0:
            return f"{self.label}: {what} · estimating the time left…"
        left = (time.perf_counter() - self.start) / self.done * (self.total - self.done)
        return f"{self.label}: {what} · about {left:.0f} s left"

    def begin(self, what: str) -> None:
        self.open = True
        self.bar.progress(min(self.done / self.total, 1.0), text=self._text(what))

    def end(self) -> None:
        self.open = False
        self.done += self.weights[self.step] if self.step < len(self.weights) else 0.0
        self.step += 1
        self.bar.progress(min(self.done / self.total, 1.0), text=self._text(f"{self.step} of {len(self.weights)} done"))

    def next(self, what: str) -> None:
        """End the step under way (if one is) and begin the next: a page's sections in a row."""
        if self.open:
            self.end()
        self.begin(what)

    def close(self) -> None:
        self.bar.empty()


class PageProgress(StepProgress):
    """A page's own bar over its sections on its first full run in a session. A cold visit reads the bundles,
    computes and draws every figure (3-3.6 s on 2 cores, measured by bench/dashboard.py, with no bar before);
    later reruns of the page read cached data and are quick, so no bar flashes on every click."""

    def __init__(self, page: str, weights: list[float]):
        self.key, self.open = f"hybridviz_page_drawn_{page}", False
        self.shown = not st.session_state.get(self.key)
        if self.shown:
            super().__init__("Loading the page", weights)

    def begin(self, what: str) -> None:
        if self.shown:
            super().begin(what)

    def end(self) -> None:
        if self.shown:
            super().end()

    def close(self) -> None:
        # set at the end, not the start: a run cut short by a click draws the bar again next time
        st.session_state[self.key] = True
        if self.shown:
            super().close()


def map_with_progress(label: str, items: list, fn, describe=str) -> list:
    """[fn(item) for item in items] behind a StepProgress (one step per item)."""
    progress = StepProgress(label, [1.0] * len(items))
    out = []
    for item in items:
        progress.begin(describe(item))
        out.append(fn(item))
        progress.end()
    progress.close()
    return out


def _stamp(path: Path) -> float:
    """Newest modification time under a bundle's manifest and summary (the cache key of its frames)."""
    return max((p.stat().st_mtime for p in (path / "manifest.json", path / "summary.json") if p.exists()),
               default=0.0)


@st.cache_data(show_spinner="Reading the result bundle…", max_entries=8)
def _bundle(path: str, stamp: float) -> Bundle:
    return load_bundle(path)


def bundle_page(intro: str | None = None, progress: StepProgress | None = None) -> Bundle:
    """The head of a page that reads a result bundle (app.py has drawn its heading): intro, export format, the
    bundle (or stop, the page's bar removed)."""
    if intro:
        st.markdown(intro)
    image_format()
    bundle = current_bundle()
    if bundle is None:
        if progress is not None:
            progress.close()
        st.stop()
    st.caption(f"How far these models trained: {training_extent(bundle)['text']}.")
    partial_notice(bundle)
    return bundle


STUDY_PREFIX = "study:"  # a study's bundle in the selector (and the URL): study:<name>


def study_bundles() -> dict[str, Path]:
    """The studies' bundles listed beside the reference ones: each sampler with two finished runs."""
    from hybridviz.experiments import study

    root = paths.STUDIES_DIR  # read at call time: tests point it elsewhere
    return {f"{STUDY_PREFIX}{p.name}": p for p in study.study_bundles(root)}


def partial_notice(bundle: Bundle) -> dict | None:
    """A study still running (or stopped before its end): its verdict is partial, said above the figures."""
    from hybridviz.experiments import study

    state = study.partial(bundle.path)
    if state is not None:
        st.warning(f"**Partial** — study `{bundle.path.name}` has {state['done']} of {state['total']} units "
                   f"finished (it is {state['state']}): every verdict and figure here is partial until the study "
                   "is complete. Follow it on the Study page.")
    return state


@st.cache_data(max_entries=16)
def _training_extent(path: str, stamp: float) -> dict:
    from hybridviz.experiments.bundle import training_extent as compute

    return compute(_bundle(path, stamp))


def training_extent(bundle: Bundle) -> dict:
    """experiments.bundle.training_extent of a bundle, read from its training records once per bundle state."""
    return _training_extent(str(bundle.path), _stamp(bundle.path))


@st.cache_data(max_entries=8)
def _step_budget(root: str, name: str, stamp: float) -> dict | None:
    return bundle_module.read_step_budget(Path(root), name)


def step_budget(name: str = "step-budget") -> dict | None:
    """A step-budget check beside the bundles (cache/reference/<name>), or None before it ran."""
    root = bundle_module.REFERENCE_DIR
    path = Path(root) / name / "budget.json"
    return _step_budget(str(root), name, path.stat().st_mtime if path.exists() else 0.0)


def step_budgets() -> dict[str, dict]:
    """Every step-budget check beside the bundles, by folder name (a damaged one is named, not fatal)."""
    out = {}
    for name in bundle_module.find_step_budgets(bundle_module.REFERENCE_DIR):
        try:
            out[name] = step_budget(name)
        except BundleError as exc:
            st.warning(f"{exc}")
    return out


@st.cache_data(max_entries=8)
def _curves(path: str, stamp: float) -> dict | None:
    from hybridviz.experiments.curves import read_curves

    return read_curves(Path(path))


def learning_curves() -> dict[str, dict]:
    """Every learning-curve check beside the bundles (cache/reference/curves-*), by folder name."""
    from hybridviz.experiments.curves import find_curves

    root = Path(bundle_module.REFERENCE_DIR)
    out = {}
    for name in find_curves(root):
        path = root / name / "curves.json"
        state = _curves(str(path), path.stat().st_mtime)
        if state is None:
            st.warning(f"{path} is damaged; rerun `python -m hybridviz curves --out {root / name}`, which "
                       "rewrites it from the finished runs.")
        elif state.get("runs"):
            out[name] = state
    return out


@st.cache_data(max_entries=16)
def _bundle_curves(path: str, stamp: float) -> dict | None:
    from hybridviz.experiments.curves import bundle_curves

    return bundle_curves(Path(path))


def bundle_learning_curves(bundles: list[Bundle] | None = None) -> dict[str, dict]:
    """The learning curves of every early-stopped bundle (`bundles`, else all_bundles: cache/reference/* and the
    studies), by bundle name: experiments.curves.bundle_curves, read once per bundle state. A bundle without an
    early-stopped unit is left out; a damaged training record is named, not fatal."""
    from hybridviz.experiments.robustness import bundle_name

    out = {}
    for b in all_bundles() if bundles is None else bundles:
        try:
            state = _bundle_curves(str(b.path), _stamp(b.path))
        except BundleError as exc:
            st.warning(f"{b.path.name}: {exc}")
            continue
        if state:
            out[bundle_name(b)] = state
    return out


def current_bundle() -> Bundle | None:
    """The bundle chosen in the sidebar (cache/reference/*, and cache/studies/* as study:<name>), or None with an
    empty-state message shown."""
    root = bundle_module.REFERENCE_DIR  # read at call time: tests point it elsewhere
    found = {p.name: p for p in find_bundles(root)}
    found.update(study_bundles())  # studies run from the Study page, once each sampler has two finished runs
    if not found:
        st.info(f"No result bundle in `{root}` yet. Make one (hours on 2 CPU cores; resumable):\n\n"
                f"`{GRID_COMMAND}`, or run a study on the Study page.")
        return None
    names, bundle_paths = list(found), list(found.values())
    # the converged bundle once it exists, else the main sampler grid; other set-ups are one choice away
    default = next((n for n in paths.OPENING_BUNDLES if n in names), MAIN_BUNDLE)
    name = param_select("Result bundle", names, "bundle", sidebar=True, default=default)
    path = bundle_paths[names.index(name)]
    try:
        return _bundle(str(path), _stamp(path))
    except BundleError as exc:
        st.error(f"{exc}")
        return None


def param_select(label: str, options: list, key: str, default=None, sidebar: bool = False,
                 format_func=str, help: str | None = None):
    """A selectbox whose choice lives in the URL (?key=value), so a view can be shared."""
    options = list(options)
    if not options:
        return None
    wanted = st.query_params.get(key)
    by_text = {str(o): o for o in options}
    value = by_text.get(wanted, default if default in options else options[0])
    where = st.sidebar if sidebar else st
    choice = where.selectbox(label, options, index=options.index(value), key=f"param_{key}",
                             format_func=format_func, help=help)
    st.query_params[key] = str(choice)
    return choice


def param_multiselect(label: str, options: list, key: str, default: list | None = None, sidebar: bool = False):
    options = list(options)
    wanted = st.query_params.get_all(key)
    value = [o for o in options if str(o) in wanted] if wanted else \
        [o for o in (options if default is None else default) if o in options]
    where = st.sidebar if sidebar else st
    choice = where.multiselect(label, options, default=value, key=f"param_{key}")
    st.query_params[key] = [str(c) for c in choice]
    return choice


def image_format() -> str:
    return st.sidebar.radio("Chart export format", ["png", "svg"], horizontal=True, key="image_format",
                            help="The camera icon on each chart downloads it in this format.")


def chart(fig, data: pd.DataFrame, name: str) -> None:
    """A plotly chart with an image export (modebar) and a CSV download of exactly the data drawn."""
    # keyed by name: a page that draws two charts of equal content still gets two distinct elements
    st.plotly_chart(fig, width="stretch", config=chart_config(st.session_state.get("image_format", "png"), name),
                    key=f"chart_{name}")
    # the CSV is written when clicked (a callable), not on every rerun: a bias frame has ~250k rows
    st.download_button(f"Data as CSV ({len(data):,} rows)", lambda: data.to_csv(index=False).encode("utf-8"),
                       file_name=f"{name}.csv", mime="text/csv", key=f"csv_{name}")


def full_table(frame: pd.DataFrame, every_row: bool = True) -> None:
    """A table with every row shown (its height fits them; no 10-row scroll box) and each text column wide enough
    for its longest entry."""
    from hybridviz.viz.tables import column_widths

    st.dataframe(frame, hide_index=True, width="stretch", height="content" if every_row else "auto",
                 column_config={c: st.column_config.Column(width=w) for c, w in column_widths(frame).items()})


def outdated_summary_notice(bundle: Bundle) -> bool:
    """Says so, with the command, when the bundle's summary predates the current statistics; True then."""
    if bundle_module.summary_outdated(bundle.summary):
        st.warning(f"This bundle's summary.json (version {bundle.summary.get('version', 1)}) predates the current "
                   f"statistics (version {bundle_module.SUMMARY_VERSION}: the analysis plan, marks capped by the "
                   "permutation floor, paragraph clusters, equivalence tests), so no marks or verdict are shown. "
                   "Recompute it from the per-model files with "
                   f"`python -m hybridviz summarise {bundle.path}`.")
        return True
    return False


def provenance_caption(bundle: Bundle) -> None:
    prov = bundle.manifest.get("provenance", {})
    machine = prov.get("machine", {})
    units = bundle.manifest.get("units", {})
    done = sum(1 for u in units.values() if u.get("state") == "done")
    st.caption(f"Bundle `{bundle.path.name}` · made by `{prov.get('command')}` · commit "
               f"{(prov.get('commit') or 'unknown')[:10]} · started {prov.get('created')} · updated "
               f"{bundle.manifest.get('updated')} · {machine.get('cpus')} CPUs, {machine.get('platform')} · "
               f"{done}/{len(units)} units done · {bundle.manifest.get('wall_s', 0) / 3600:.1f} h of compute")


def results_with_lab(bundle: Bundle, task: str | None = None) -> list:
    """The bundle's results plus finished lab runs' evaluations (group "lab:<run id>")."""
    lab = [r for r in bundle_module.lab_results() if task is None or r.task == task]
    return bundle.select(task=task) + lab


def unsupported_languages_note(results) -> None:
    """Under a per-language view: the languages a model does not support (mUSE: el, hi, vi...), which its
    evaluations left out, so an absent bar or cell reads as 'not evaluated', not as zero."""
    missing = {}
    for r in results:
        langs = r.metrics.get("notes", {}).get("unsupported_languages")
        if langs:
            missing.setdefault(r.metrics.get("model", {}).get("label", r.group), set()).update(langs)
    for label, langs in sorted(missing.items()):
        st.caption(f"Not evaluated: {', '.join(sorted(langs))} — {label} does not support them (left out, not "
                   f"averaged in).")


def groups_of(results) -> list[str]:
    from hybridviz.viz.style import group_order

    return group_order({r.group for r in results})


# ---------------------------------------------------------------------------------------------- models


def available_models() -> dict[str, str]:
    """label -> encoder spec: the offline base, and every fine-tune whose weights are on this machine."""
    from hybridviz.training.runs import list_runs

    from hybridviz.encoders.debias import METHODS, chosen_params
    from hybridviz.encoders.registry import compact_models

    models = {"me5-small (base)": "me5-small"}
    # shipped with the bundles: every fresh clone has them; the main bundle's first (pages default to the first few)
    for name in sorted(compact_models(), key=lambda n: "/" in n):
        bundle, _, unit = name.rpartition("/")
        sampler, seed = unit.rsplit("-s", 1)
        where = f"shipped with {bundle}" if bundle else "shipped with the bundle"
        models[f"{SAMPLER_LABELS.get(sampler, sampler)} seed {seed} ({where})"] = f"ref:{name}"
    for method in METHODS:  # training-free: fitted on MLQA-R training-side texts, K / R from the debias sweep
        params = ",".join(f"{k}={v}" for k, v in chosen_params(method).items())
        name = f"{method}:{params}" if params else method
        models[f"me5-small + {name} (training-free)"] = f"me5-small+{name}"
    for run in list_runs():
        if run.status().get("state") == "done" and (run.model_dir / "model.safetensors").exists():
            cfg = run.config()
            alpha = f" α={cfg.get('alpha')}" if cfg.get("sampler") == "hybrid" else ""
            models[f"{cfg.get('sampler')}{alpha} seed {cfg.get('seed')} · {cfg.get('steps')} steps · {run.id}"] = \
                f"run:{run.id}"
    return models


MAX_ENCODERS = 4  # models held at once by the whole server (the Embedding map draws 4): ~0.24 GB each in bf16
MAX_INDEXES = 8  # finished pool indexes held (vectors only, 6-26 MB each; the encoder is not part of them)


@st.cache_resource(show_spinner=False)
def _encoders() -> dict:
    """The encoders every browser session shares: spec -> encoder, least recently used first, MAX_ENCODERS at
    most, and the lock under which they load (one load at a time: two sessions never load the same model twice)."""
    import threading
    from collections import OrderedDict

    return {"held": OrderedDict(), "lock": threading.RLock()}


def encoder(spec: str):
    """The shared encoder of `spec`, loaded at the policy's precision (the grid's too, so its embedding cache
    serves the pools warm) with one copy of the weights (Encoder.encode_only). The server holds at most
    MAX_ENCODERS: a new one evicts the least recently used (nothing else keeps a reference: cached indexes hold
    vectors, not encoders). `<model>+<method>` wraps the shared encoder of `<model>`, not a second copy."""
    from hybridviz.encoders.debias import DebiasedEncoder, split_spec

    spec = spec.strip()
    cache = _encoders()
    held = cache["held"]
    with cache["lock"]:
        if spec in held:
            held.move_to_end(spec)
            return held[spec]
        base, method = split_spec(spec)
        if method is not None:
            loaded = DebiasedEncoder(encoder(base), method)
        else:
            from hybridviz.encoders import load_encoder
            from hybridviz.encoders.policy import default_precision

            with st.spinner(f"Loading the model {spec}…"):
                loaded = load_encoder(spec, precision=default_precision(spec)).encode_only()
            _share_tokenizer(loaded, held.values())
        held[spec] = loaded
        evicted = False
        while len(held) > MAX_ENCODERS:
            held.popitem(last=False)
            evicted = True
    if evicted:
        release_memory()
    return loaded


def _tokenizer_key(enc) -> tuple | None:
    tok = getattr(getattr(enc, "model", None), "tokenizer", None)
    if tok is None:
        return None
    return type(tok).__name__, str(getattr(tok, "name_or_path", "")), len(tok)


def _share_tokenizer(loaded, held) -> None:
    """Give a new encoder the tokenizer of a held one read from the same files (the shipped models are deltas of
    me5-small: each load reads its 250k-piece tokenizer again, ~0.28 GB in memory apiece)."""
    key = _tokenizer_key(loaded)
    if key is None:
        return
    for other in held:
        if other is not loaded and _tokenizer_key(other) == key:
            mine, theirs = loaded.model.tokenizer, other.model.tokenizer
            if mine is not theirs:
                first = loaded.model[0]
                # sentence-transformers >= 6 holds it as the module's processor and its input formatter's too
                for holder in (first, getattr(first, "input_formatter", None)):
                    for name, value in list(vars(holder).items()) if holder is not None else []:
                        if value is mine:
                            setattr(holder, name, theirs)
                if loaded.model.tokenizer is not theirs:
                    first.tokenizer = theirs
            return


def held_encoders() -> list[str]:
    """The specs of the encoders the server holds, least recently used first."""
    return list(_encoders()["held"])


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the system (glibc's malloc_trim): torch's and pandas' freed
    blocks otherwise stay in the process's RSS."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@st.cache_resource(show_spinner=False)
def _indexes() -> dict:
    """(model spec, pool) -> a finished PoolIndex without its encoder, shared by every session, least recently
    used first."""
    from collections import OrderedDict

    return OrderedDict()


def pool_index(spec: str, pool: str):
    """The finished index of `pool` by the model `spec` if one is held, bound to the shared encoder; else None."""
    import dataclasses

    held = _indexes()
    index = held.get((spec, pool))
    if index is None:
        return None
    held.move_to_end((spec, pool))
    enc = encoder(spec)
    enc.prepare(index.corpus)  # an index-time debiasing fit (a no-op when it is fitted on this pool already)
    return dataclasses.replace(index, encoder=enc)


def keep_pool_index(spec: str, pool: str, index) -> None:
    """Hold a finished index for every session (its vectors and pool; the encoder stays in `encoder`'s bound)."""
    import dataclasses

    held = _indexes()
    held[(spec, pool)] = dataclasses.replace(index, encoder=None)
    held.move_to_end((spec, pool))
    while len(held) > MAX_INDEXES:
        held.popitem(last=False)
    release_memory()  # the build's transient arrays (each chunk re-read the embedding cache's shards)


@st.cache_data(show_spinner="Reading the benchmark's queries…", max_entries=8)
def query_texts(task: str, languages: tuple[str, ...], limit: int | None, seed: int) -> dict[str, str]:
    """query id -> text for the corpus an evaluation used (its languages and sample are in its metrics.json)."""
    from hybridviz.tasks import build_corpus

    corpus = build_corpus(task, list(languages), limit, seed)
    return dict(zip(corpus.query_ids, corpus.query_texts))


def query_texts_of(result) -> dict[str, str]:
    notes = result.metrics.get("notes", {})
    return query_texts(result.task, tuple(result.metrics.get("languages", [])), notes.get("limit"),
                       notes.get("seed", 0) or 0)


@st.cache_data(show_spinner=False, max_entries=32)
def _delta_languages(folders_a: tuple[str, ...], folders_b: tuple[str, ...]) -> list[str]:
    return bundle_module.delta_languages(folders_a, folders_b)


@st.cache_data(show_spinner=False, max_entries=512)
def _delta_row(folders_a: tuple[str, ...], folders_b: tuple[str, ...], query_lang: str) -> dict:
    return bundle_module.delta_row(folders_a, folders_b, query_lang)


def delta_cells(folders_a: tuple[str, ...], folders_b: tuple[str, ...]) -> dict:
    """bundle.delta_cells, one cached row per query language behind a progress bar (cached by the evaluation
    folders compared: their files never change once written)."""
    langs = _delta_languages(folders_a, folders_b)
    rows = map_with_progress("Run-level tests per language pair", langs,
                             lambda x: _delta_row(folders_a, folders_b, x), describe=lambda x: f"queries in {x}")
    return bundle_module.delta_frames(dict(zip(langs, rows)), langs)


def budget_counterparts(bundle: Bundle) -> list[Bundle]:
    """The bundles in cache/reference/ that trained what `bundle` trained in the other regime: its 100-step twins
    when it is early-stopped, its converged twins when not (experiments.answers.counterparts; manifests first, so
    only those bundles are read)."""
    out = []
    for path in counterparts(bundle, find_bundles(bundle_module.REFERENCE_DIR)):
        try:
            out.append(_bundle(str(path), _stamp(path)))
        except BundleError as exc:
            st.warning(f"{path.name}: {exc}")
    return out


def all_bundles() -> list[Bundle]:
    """Every readable result bundle under cache/reference/, then every study's bundle that the selector lists
    (each sampler with two finished runs); a damaged one is named, not fatal."""
    out = []
    for path in [*find_bundles(bundle_module.REFERENCE_DIR), *study_bundles().values()]:
        try:
            out.append(_bundle(str(path), _stamp(path)))
        except BundleError as exc:
            st.warning(f"{path.name}: {exc}")
    return out
