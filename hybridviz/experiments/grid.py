"""The sampler grid: the base encoder and x-x-mono / x-y / hybrid fine-tunes from it (same step budget, several
seeds), an alpha sweep, every model evaluated on XQuAD-R and MKQA, written as a result bundle.

    python -m hybridviz experiment --out cache/reference/sampler-grid

Every fine-tune is a registry run and every evaluation a folder with metrics.json, so the grid is a list of
resumable units: a rerun skips what is finished, an interrupted one continues. After each unit the bundle's
manifest.json (spec, provenance, per-unit state and wall time) and summary.json (mean +/- std over seeds, paired
tests) are rewritten, so a partly finished grid is already a usable, honest bundle.

Bundle layout:
    manifest.json, summary.json, summary.csv
    models/<label>/training/{config.json,train_log.jsonl,status.json}   (fine-tunes; weights stay in cache/runs)
    models/<label>/<task>/{metrics.json,per_query.npz,per_query_pairs.npz}   (results.py: compact encoding)
    layouts/<digest>.npz   what every model of a task shares (ids, languages, relevant items; results.py)
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from hybridviz.encoders.registry import Encoder, declared_languages, default_precision, load_encoder
from hybridviz.evaluate import evaluate
from hybridviz.provenance import provenance
from hybridviz.results.format import LAYOUTS
from hybridviz.tasks import DEFAULT_EVALUATIONS, MKQA_ANSWERS_PROTOCOL
from hybridviz.errors import HybridvizError
from hybridviz.fileio import write_json_atomic
from hybridviz.training.runs import Run
from hybridviz.training.samplers import sampler_alpha
from hybridviz.training.trainer import TrainConfig, train

_TRAIN = TrainConfig()


@dataclass
class GridSpec:
    # training settings default to TrainConfig's (their one home); lr and warm-up there are the sweep's choice
    model: str = _TRAIN.model
    samplers: list[str] = field(default_factory=lambda: ["x-x-mono", "x-y", "hybrid"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    alpha: float = _TRAIN.alpha
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    alpha_seed: int = 0
    alpha_tasks: list[str] = field(default_factory=lambda: ["xquad-r"])
    steps: int = _TRAIN.steps
    learning_rate: float = _TRAIN.learning_rate
    warmup_steps: int = _TRAIN.warmup_steps
    batch_size: int = _TRAIN.batch_size
    temperature: float = _TRAIN.temperature
    precision: str = field(default_factory=default_precision)  # of evaluation
    # of training (autocast); part of every run id, so a bundle fixes it rather than the CPU it continues on
    train_precision: str = field(default_factory=default_precision)
    train_data: str = _TRAIN.train_data  # "mlqa-r", a train-extra source, or a mix such as "mlqa-r+mintaka"
    train_languages: list[str] | None = None  # None: every language of the training data (mUSE: its supported)
    # texts per forward pass at evaluation: bf16 sums depend on it, so one bundle keeps one value (the
    # committed grid was evaluated at 64)
    encode_batch_size: int = 64
    evaluations: list[dict] = field(default_factory=lambda: [dict(e) for e in DEFAULT_EVALUATIONS])
    # training-free debiasing (encoders/debias.py): each applied to the base model, and one applied to every
    # fine-tuned sampler model ("best": the method that won the held-out MLQA-R debias sweep)
    methods: list[str] = field(default_factory=lambda: ["center", "lir", "lsar", "leace", "center@index"])
    sampler_method: str | None = "best"
    # the converged regime (experiments/curves.py): a held-out share of the training data and the later training
    # settings (fast step, schedule, weight decay, validation every eval_steps, patience); `steps` is then the
    # maximum budget. Empty for the 100-step bundles.
    holdout: float = 0.0
    train_extra: dict = field(default_factory=dict)

    def train_config(self, sampler: str, seed: int, alpha: float | None = None) -> TrainConfig:
        eval_steps = int(self.train_extra.get("eval_steps", 0))
        return TrainConfig(model=self.model, sampler=sampler, alpha=self.alpha if alpha is None else alpha,
                           steps=self.steps, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           warmup_steps=self.warmup_steps, temperature=self.temperature, seed=seed,
                           mixed_precision=self.train_precision, train_data=self.train_data,
                           train_languages=self.train_languages, holdout=self.holdout,
                           extra=dict(self.train_extra), **({"save_steps": eval_steps} if eval_steps else {}))


@dataclass
class Unit:
    label: str  # "base", "hybrid-s0", "x-y-s2", "hybrid-a0.25-s0"
    sampler: str  # "base" for the untrained encoder
    seed: int | None
    alpha: float | None
    config: TrainConfig | None
    tasks: list[str]
    method: str | None = None  # a training-free debiasing step after the model ("center", "lir:k=1", ...)


# Fields added to GridSpec after a bundle was written, with the value that bundle used implicitly: a bundle
# without the field continues as if it had been written with that value.
# (every bundle written before `train_precision` existed was trained on CPUs with native bf16, on MLQA-R)
IMPLICIT_SPEC = {"encode_batch_size": 64, "train_precision": "bf16", "train_data": "mlqa-r", "train_languages": None,
                 "holdout": 0.0, "train_extra": {}}
INHERITED = ("precision", "train_precision")  # machine-dependent defaults a continued bundle keeps
EXTENSIBLE = ("seeds", "methods", "evaluations")  # lists a grid may grow: seeds, debiasing methods, benchmarks
ADDABLE = ("sampler_method",)  # fields a grid may gain (more units), never change once set


def spec_extends(old: dict, new: dict) -> bool:
    """True when `new` continues the grid `old`: same settings, seeds and methods only added, new fields at
    their implicit value."""
    return not spec_conflicts(old, new)


def spec_conflicts(old: dict, new: dict) -> list[str]:
    """The settings of `new` that keep it from continuing the grid `old` (empty when it continues it)."""
    conflicts = []
    for key in sorted(set(old) | set(new)):
        if key in EXTENSIBLE:
            as_set = lambda items: {json.dumps(i, sort_keys=True) for i in items}  # noqa: E731 (dicts too)
            if not as_set(old.get(key, [])) <= as_set(new.get(key, [])):
                conflicts.append(f"{key}: {old.get(key)} there, {new.get(key)} now (a grid may only add to them)")
        elif key in ADDABLE:
            if old.get(key) is not None and old.get(key) != new.get(key):
                conflicts.append(f"{key}: {old.get(key)} there, {new.get(key)} now")
        elif key not in old:
            if key not in IMPLICIT_SPEC or new[key] != IMPLICIT_SPEC[key]:
                conflicts.append(f"{key}: {IMPLICIT_SPEC.get(key, 'absent')} there, {new[key]} now")
        elif old[key] != new.get(key):
            conflicts.append(f"{key}: {old[key]} there, {new.get(key)} now")
    return conflicts


def inherited_settings(out: Path) -> dict:
    """The machine-dependent settings of the bundle at `out` (precision of evaluation and of training), so that
    continuing it on another CPU keeps them instead of that CPU's defaults; {} for a new bundle."""
    path = Path(out) / "manifest.json"
    try:
        spec = json.loads(path.read_text()).get("spec") or {}
    except (OSError, ValueError):
        return {}
    return {key: spec.get(key, IMPLICIT_SPEC.get(key)) for key in INHERITED if key in spec or key in IMPLICIT_SPEC}


def plan(spec: GridSpec) -> list[Unit]:
    """The base and the training-free methods on it first, then seed by seed (each seed completes a comparison),
    each fine-tune followed by the sampler method on it (it reuses the run's weights and embeddings while they are
    on disk), then the extra alpha points.

    alpha = 0 and 1 are the x-y and x-x-mono runs of the alpha seed: the hybrid sampler with those alphas draws
    the same batches (tests/test_samplers.py checks it), so they are not trained twice.
    """
    all_tasks = [e["task"] for e in spec.evaluations]
    units = [Unit("base", "base", None, None, None, all_tasks)]
    for method in spec.methods:
        units.append(Unit(f"base+{method}", "base", None, None, None, all_tasks, method))
    sampler_method = resolve_method(spec.sampler_method)
    for seed in spec.seeds:
        for sampler in spec.samplers:
            label = f"{sampler}-s{seed}"
            unit = Unit(label, sampler, seed, sampler_alpha(sampler, spec.alpha), spec.train_config(sampler, seed),
                        all_tasks)
            units.append(unit)
            if sampler_method:
                units.append(replace(unit, label=f"{label}+{sampler_method}", method=sampler_method))
    covered = {u.alpha for u in units if u.seed == spec.alpha_seed}
    for a in spec.alphas:
        if a not in covered:
            units.append(Unit(f"hybrid-a{a:g}-s{spec.alpha_seed}", "hybrid", spec.alpha_seed, a,
                              spec.train_config("hybrid", spec.alpha_seed, a), list(spec.alpha_tasks)))
    return units


def resolve_method(name: str | None) -> str | None:
    """"best" -> the spec that won the held-out debias sweep (None before it ran); other names as they are."""
    if name != "best":
        return name
    from hybridviz.encoders.debias import SWEEP_PATH

    if not SWEEP_PATH.exists():
        return None
    return json.loads(SWEEP_PATH.read_text()).get("best_spec")


def incomplete_provenance(metrics: dict) -> bool:
    """True for an evaluation written before runs recorded their code hash, libraries and lengths."""
    prov = metrics.get("provenance", {})
    return not (prov.get("code", {}).get("source_sha256") and prov.get("libraries")
                and prov.get("settings", {}).get("max_seq_length"))


def evaluated_unsupported_languages(metrics: dict) -> list[str]:
    """Languages an evaluation covered that its model does not support (fine-tuned mUSE runs were evaluated on all
    of XQuAD-R before runs inherited their base's languages): such figures cannot stand beside the base's."""
    declared = declared_languages(str(metrics.get("model", {}).get("spec", "")))
    return [x for x in metrics.get("languages", []) if declared is not None and x not in declared]


def uncommitted_code(metrics: dict) -> bool:
    """True for an evaluation run from a working tree with uncommitted changes: its source hash is recorded, but
    the code itself can be found in no commit."""
    return bool(metrics.get("provenance", {}).get("code", {}).get("dirty"))


def stale(metrics: dict) -> bool:
    """An evaluation to redo on --refresh: incomplete provenance, code no commit holds, a task whose protocol has
    changed since, or languages its model does not support."""
    outdated = (metrics.get("task") == "mkqa-answers"
                and metrics.get("notes", {}).get("protocol_version", 1) < MKQA_ANSWERS_PROTOCOL)
    return (incomplete_provenance(metrics) or uncommitted_code(metrics) or outdated
            or bool(evaluated_unsupported_languages(metrics)))


def run_grid(out: Path, spec: GridSpec | None = None, log: Callable[[str], None] = print,
             only: list[str] | None = None, runs_root: Path | None = None, refresh: bool = False,
             tasks: list[str] | None = None, replace_retrained: bool = False, summarise: bool = True,
             analysis_plan: dict | None = None) -> dict:
    """Run (or continue) every unit of the grid into the bundle at `out`; returns the manifest.

    Fine-tunes go to the run registry (`runs_root`, default cache/runs), where the dashboard finds them.
    `tasks`: evaluate only these benchmarks in this invocation (the others stay pending).
    `refresh`: also re-evaluate (retraining where the weights are gone) every evaluation whose provenance is
    incomplete or whose task protocol has changed since (`stale`). The new files are written beside the old ones and swapped in only when complete, and a retrained
    model must have the old fingerprint (training is deterministic): the bundle never loses a finished result.
    `replace_retrained`: a sampler unit whose weights are gone is retrained whenever it or one of its +method
    units has work to do, and where the retrained weights differ from the checkpoint the bundle evaluated (another
    kind of CPU), the unit is evaluated anew on every task into models/<label>.retrained/ and swapped in whole
    once complete; its +method units' old figures leave with it and are evaluated on the new checkpoint in their
    turn. Each unit's figures always come from one checkpoint. Without it such a unit is refused.
    `summarise=False`: no summary.json (units run in parallel into folders of their own, merged by `merge_bundle`,
    are summarised once after the merge).
    `analysis_plan`: a plan (experiments/plan.py; or {"plan", "commit", "file"}) written into manifest.json before
    the first unit runs; refused where the bundle holds another plan, or units but no plan.
    """
    from hybridviz.experiments.bundle import write_summary

    spec = spec or GridSpec()
    out = Path(out)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    conflicts = spec_conflicts(manifest["spec"], asdict(spec)) if manifest.get("spec") else []
    if conflicts:
        raise HybridvizError(f"{out} holds a grid with other settings ({'; '.join(conflicts)}); choose another "
                             f"--out or remove it.")
    manifest.setdefault("provenance", provenance(None))
    # every start or resume: the code of each unit is in its own metrics.json / config.json provenance too
    manifest.setdefault("sessions", []).append(provenance(None))
    manifest["spec"] = asdict(spec)
    if spec.sampler_method == "best" and resolve_method("best"):
        from hybridviz.encoders.debias import SWEEP_PATH

        sweep = json.loads(SWEEP_PATH.read_text())
        manifest["debias_sweep"] = {"best_spec": sweep["best_spec"], "chosen": sweep["chosen"],
                                    "selection": sweep["selection"], "file": "cache/reference/debias-sweep/sweep.json"}
    units_state = manifest.setdefault("units", {})
    if analysis_plan is not None:  # fixed in writing before the first unit (experiments/plan.py)
        from hybridviz.experiments.plan import record_plan

        record_plan(manifest, analysis_plan)
        write_json_atomic(manifest_path, manifest)

    def save(summary: bool = False, final: bool = False):
        manifest["updated"] = provenance(None)["created"]
        manifest["wall_s"] = round(sum(sum(u.get("wall_s", {}).values()) for u in units_state.values()), 1)
        write_json_atomic(manifest_path, manifest)
        # the summary re-reads every per-query file: once per finished unit with a quicker 2,000 resamples per
        # test, and 10,000 at the end
        if (summary or final) and summarise:
            write_summary(out, n_resamples=10_000 if final else 2_000)

    units = plan(spec)

    def missing(u: Unit, folder: Path) -> list[dict]:
        """The evaluations of `u` to run now that `folder` does not hold yet."""
        return [ev for ev in spec.evaluations if ev["task"] in u.tasks and (tasks is None or ev["task"] in tasks)
                and not (folder / ev["task"] / "metrics.json").exists()]

    for unit in units:
        if only and unit.label not in only:
            continue
        state = units_state.setdefault(unit.label, {"sampler": unit.sampler, "seed": unit.seed,
                                                    "alpha": unit.alpha, "wall_s": {}})
        if unit.method:
            state["method"] = unit.method
        model = spec.model
        pending = missing(unit, out / "models" / unit.label)
        redo = [ev for ev in spec.evaluations if refresh and ev["task"] in unit.tasks and ev not in pending
                and (tasks is None or ev["task"] in tasks)
                and (out / "models" / unit.label / ev["task"] / "metrics.json").exists()
                and stale(json.loads((out / "models" / unit.label / ev["task"] / "metrics.json").read_text()))]
        checked = None  # the retrained model, loaded by its fingerprint check
        staging = out / "models" / f"{unit.label}{RETRAINED}"  # a unit being evaluated anew (replace_retrained)
        if unit.config is not None:
            run_id = unit.config.run_id()
            state["run_id"] = run_id
            run = Run(run_id, runs_root)
            model = f"run:{run_id}" if runs_root is None else str(run.model_dir)
            # the +method units of this run need its weights too: retrain here, so a replacement starts here
            derived = replace_retrained and not unit.method and any(
                u.method and u.config is not None and u.config.run_id() == run_id and missing(u, out / "models" / u.label) for u in units)
            trained = False
            # weights are not part of a bundle: a fresh clone retrains a run only if it has evaluations to do
            if "train" not in state["wall_s"] or (
                    (pending or redo or derived or staging.is_dir()) and not run.model_dir.is_dir()):
                log(f"[{unit.label}] training {run_id}")
                start = time.perf_counter()
                run = train(unit.config, root=runs_root)
                if run.status().get("state") != "done":
                    state["state"] = f"training {run.status().get('state')}"
                    save(summary=True)
                    raise HybridvizError(f"Fine-tune {run_id} ended {run.status().get('state')}; "
                                         f"rerun the same command to resume it.")
                state["wall_s"]["train"] = round(time.perf_counter() - start, 1)
                trained = True
            # before a training record or any evaluation enters the bundle (weights trained by an earlier, refused
            # invocation are checked too)
            if trained or pending or redo or derived or staging.is_dir():
                try:
                    checked = check_same_weights(out, unit.label, model, spec.precision)
                except DifferentWeights as differ:
                    if not replace_retrained or unit.method:
                        raise
                    checked = differ.encoder
                    log(f"[{unit.label}] {differ}: evaluating the retrained model anew on every task")
                    shutil.rmtree(staging, ignore_errors=True)  # an interrupted replacement by other weights
                    staging.mkdir(parents=True)
                    state["replacing"] = {"old_fingerprints": differ.recorded, "new_fingerprint": checked.fingerprint}
                    trained = True  # its training record goes with the new evaluations
            if trained:
                copy_training_record(run.dir, (staging if staging.is_dir() else out / "models" / unit.label)
                                     / "training")
                save()
            if staging.is_dir():  # every task of the unit, into the staging folder
                pending, redo = missing(unit, staging), []
        if unit.method:
            model = f"{model}+{unit.method}"
        encoder, same_model = None, set()  # loaded once per unit, by its first evaluation
        if checked is not None and not unit.method:  # the fingerprint check loaded this very model
            encoder = checked
            same_model.update({checked.fingerprint, checked.legacy_fingerprint()})

        def load():
            loaded = load_encoder(model, precision=spec.precision)
            # taken before any encode: evaluations written before ef07552 carry the legacy definition
            # (a debiased encoder: no legacy evaluations, and an index-time one has no fingerprint before fitting)
            if isinstance(loaded, Encoder):
                same_model.update({loaded.fingerprint, loaded.legacy_fingerprint()})
            return loaded

        for ev in pending:
            folder = (staging if staging.is_dir() else out / "models" / unit.label) / ev["task"]
            log(f"[{unit.label}] evaluating {ev['task']}")
            start = time.perf_counter()
            if encoder is None:
                encoder = load()
            evaluate(model, ev["task"], languages=ev.get("languages"), limit=ev.get("limit"), out_dir=folder,
                     precision=spec.precision, batch_size=spec.encode_batch_size, layouts=out / LAYOUTS, log=log,
                     encoder=encoder)
            state["wall_s"][f"eval {ev['task']}"] = round(time.perf_counter() - start, 1)
            save()
        for ev in redo:
            folder = out / "models" / unit.label / ev["task"]
            log(f"[{unit.label}] re-evaluating {ev['task']} (provenance incomplete, protocol changed, or "
                "languages its model does not support)")
            if encoder is None:
                encoder = load()
            old = json.loads((folder / "metrics.json").read_text())
            if old["model"]["fingerprint"] not in (same_model or {encoder.fingerprint}):
                raise HybridvizError(f"{unit.label}: the model now has fingerprint {encoder.fingerprint[:12]}, the "
                                     f"bundle's evaluation {old['model']['fingerprint'][:12]}; not replacing it.")
            staging = folder.with_name(folder.name + ".refresh")
            shutil.rmtree(staging, ignore_errors=True)
            evaluate(model, ev["task"], languages=ev.get("languages"), limit=ev.get("limit"), out_dir=staging,
                     precision=spec.precision, batch_size=spec.encode_batch_size, layouts=out / LAYOUTS, log=log,
                     encoder=encoder)
            retired = folder.with_name(folder.name + ".old")
            shutil.rmtree(retired, ignore_errors=True)
            folder.rename(retired)
            staging.rename(folder)
            shutil.rmtree(retired)
            state.setdefault("refreshed", []).append(ev["task"])
            pending.append(ev)  # the summary is refreshed below
            save()
        if staging.is_dir():
            if not all((staging / t / "metrics.json").exists() for t in unit.tasks):
                state["state"] = "replacing"  # the old checkpoint's figures stay until every task is done
                save()
                continue
            swap_in_retrained(out, unit, units, units_state, staging)
            log(f"[{unit.label}] replaced by the retrained checkpoint {checked.fingerprint[:12] if checked else ''}")
            pending = pending or list(unit.tasks)
        if state.get("state") != "done" or pending:  # a unit finished now: refresh the summary
            state["state"] = "done"
            save(summary=True)
    save(final=True)
    return manifest


RETRAINED = ".retrained"


def merge_bundle(src: Path, dest: Path) -> list[str]:
    """Copy the finished units of the bundle at `src` into the bundle at `dest` (created when absent); returns
    their labels. Both must be one grid (the same settings: `spec_conflicts`), so units run in parallel, each
    into a folder of its own (`experiment --only <unit> --no-summary`, e.g. on a lent GPU machine), become one
    bundle. Unfinished units stay behind; a unit `dest` already holds is refused, never overwritten. Run
    `summarise` on `dest` afterwards."""
    src, dest = Path(src), Path(dest)
    theirs = json.loads((src / "manifest.json").read_text())
    ours_path = dest / "manifest.json"
    ours = json.loads(ours_path.read_text()) if ours_path.exists() else {
        "provenance": theirs["provenance"], "sessions": [], "spec": theirs["spec"], "units": {}}
    conflicts = spec_conflicts(ours["spec"], theirs["spec"]) or spec_conflicts(theirs["spec"], ours["spec"])
    if conflicts:
        raise HybridvizError(f"{src} is another grid than {dest}: {'; '.join(conflicts)}")
    if theirs.get("analysis_plan"):  # one bundle, one plan (experiments/plan.py)
        if ours.get("analysis_plan", theirs["analysis_plan"])["plan"] != theirs["analysis_plan"]["plan"]:
            raise HybridvizError(f"{src} was run under another analysis plan than {dest}; not merging.")
        ours["analysis_plan"] = theirs["analysis_plan"]
    done = {label: state for label, state in theirs.get("units", {}).items() if state.get("state") == "done"}
    clash = sorted(set(done) & set(ours["units"]))
    if clash:
        raise HybridvizError(f"{dest} already holds {', '.join(clash)}; not overwriting them with {src}'s.")
    for label in done:
        if not (src / "models" / label).is_dir():
            raise HybridvizError(f"{src}'s manifest says {label} is done, but models/{label}/ is missing.")
    (dest / LAYOUTS).mkdir(parents=True, exist_ok=True)
    for layout in sorted((src / LAYOUTS).glob("*.npz")):  # named by the digest of their arrays
        if not (dest / LAYOUTS / layout.name).exists():
            shutil.copy2(layout, dest / LAYOUTS / layout.name)
    for label, state in done.items():
        (dest / "models").mkdir(exist_ok=True)
        shutil.copytree(src / "models" / label, dest / "models" / label)
        ours["units"][label] = state
    ours["sessions"] = ours.get("sessions", []) + [s for s in theirs.get("sessions", [])
                                                   if s not in ours.get("sessions", [])]
    ours["updated"] = max(ours.get("updated", ""), theirs.get("updated", ""))
    ours["wall_s"] = round(sum(sum(u.get("wall_s", {}).values()) for u in ours["units"].values()), 1)
    write_json_atomic(ours_path, ours)
    return sorted(done)


def swap_in_retrained(out: Path, unit: Unit, units: list[Unit], units_state: dict, staging: Path) -> None:
    """The unit's complete evaluations of its retrained checkpoint replace the old checkpoint's; its +method
    units' figures (of the old checkpoint) are removed and become pending."""
    folder = out / "models" / unit.label
    retired = folder.with_name(unit.label + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    if folder.exists():
        folder.rename(retired)
    staging.rename(folder)
    shutil.rmtree(retired, ignore_errors=True)
    state = units_state[unit.label]
    replacing = state.pop("replacing", {})
    state.pop("refreshed", None)
    state["replaced"] = {**replacing, "machine": provenance(None)["machine"]}
    for derived in units:
        if derived.method and derived.config is not None and derived.config.run_id() == unit.config.run_id():
            shutil.rmtree(out / "models" / derived.label, ignore_errors=True)
            if derived.label in units_state:
                units_state[derived.label].update(wall_s={}, state="pending")


def check_same_weights(out: Path, label: str, model: str, precision: str) -> Encoder | None:
    """A (re)trained run must be the model the bundle already evaluated for its sampler unit (`label` less any
    "+method"): training reproduces its weights only on the same kind of machine, and a unit whose evaluations
    came from two different checkpoints would be compared as one run. Returns the loaded model (None when the
    bundle has no evaluation of the unit yet, and nothing was loaded)."""
    plain = label.split("+")[0]
    # a replacement in progress: its own evaluations are the ones the retrained model must match
    folder = out / "models" / (plain + RETRAINED if (out / "models" / (plain + RETRAINED)).is_dir() else plain)
    recorded = {json.loads(p.read_text()).get("model", {}).get("fingerprint")
                for p in folder.glob("*/metrics.json")} - {None}
    if not recorded:
        return None
    encoder = load_encoder(model, precision=precision)
    same = {encoder.fingerprint, encoder.legacy_fingerprint()}
    if recorded - same:
        raise DifferentWeights(
            f"{label}: the retrained model has fingerprint {encoder.fingerprint[:12]}, the bundle's evaluations of "
            f"{plain} {', '.join(sorted(f[:12] for f in recorded - same))} (training is deterministic only on the "
            f"same kind of machine); not replacing or adding to its evaluations (--replace-retrained evaluates "
            f"the retrained model anew on every task).", encoder, sorted(recorded))
    return encoder


class DifferentWeights(HybridvizError):
    def __init__(self, message: str, encoder: Encoder, recorded: list[str]):
        super().__init__(message)
        self.encoder, self.recorded = encoder, recorded


def copy_training_record(run_dir: Path, dest: Path) -> None:
    """The small files that describe a fine-tune (not its weights) go into the bundle."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "train_log.jsonl", "status.json", "validation.jsonl", "validation_pool.json",
                 "probes.jsonl"):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, dest / name)


def with_overrides(spec: GridSpec, **kwargs) -> GridSpec:
    return replace(spec, **{k: v for k, v in kwargs.items() if v is not None})
