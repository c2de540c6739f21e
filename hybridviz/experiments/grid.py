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
    models/<label>/<task>/{metrics.json,per_query.npz,per_query_pairs.npz}   (results/: compact encoding)
    layouts/<digest>.npz   what every model of a task shares (ids, languages, relevant items; results/codec.py)

`run_grid` runs the steps below unit by unit: plan the units (`plan_units`), train or reuse one
(`train_or_reuse`), evaluate what is pending (`evaluate_pending`), refresh stale results (`refresh_stale`), swap in
a replacement (`swap_in_replacement`). Every bundle file is read and written through the results store.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from hybridviz.encoders.policy import encoding_device
from hybridviz.encoders.registry import Encoder, declared_languages, default_precision, load_encoder
from hybridviz.evaluate import evaluate
from hybridviz.provenance import provenance
from hybridviz.results.format import LAYOUTS, MANIFEST, ResultsError
from hybridviz.results.store import (copy_layouts, copy_training_record, copy_unit, fresh_folder, is_evaluated,
                                     pending_folder, read_manifest, read_metrics, recorded_fingerprints,
                                     refresh_folder, remove_folder, staging_folder, swap_in, unit_folder,
                                     write_manifest)
from hybridviz.tasks import DEFAULT_EVALUATIONS, MKQA_ANSWERS_PROTOCOL, task_dir
from hybridviz.errors import HybridvizError
from hybridviz.training.runs import Run
from hybridviz.training.samplers import sampler_alpha
from hybridviz.training.distributed import train_distributed
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
    train_data: str = _TRAIN.train_data  # "mlqa-r", a train-extra source, a mix ("mlqa-r+mintaka"), or a .jsonl
    # a JSONL file's sha256 (`pin_training_file`): in every run id, and a changed file refuses to continue the bundle
    train_data_sha256: str | None = None
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
        extra = {**self.train_extra, **({"train_data_sha256": self.train_data_sha256} if self.train_data_sha256
                                        else {})}
        return TrainConfig(model=self.model, sampler=sampler, alpha=self.alpha if alpha is None else alpha,
                           steps=self.steps, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           warmup_steps=self.warmup_steps, temperature=self.temperature, seed=seed,
                           mixed_precision=self.train_precision, train_data=self.train_data,
                           train_languages=self.train_languages, holdout=self.holdout,
                           extra=extra, **({"save_steps": eval_steps} if eval_steps else {}))

    @property
    def guard(self) -> tuple[str, ...]:
        """The evaluation sets the zero-shot guard checks the training pairs against: the grid's chosen ones."""
        from hybridviz.training.data import guard_benchmarks

        return guard_benchmarks(self.evaluations)


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
                 "holdout": 0.0, "train_extra": {}, "train_data_sha256": None}
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


def pin_training_file(spec: GridSpec) -> GridSpec:
    """`spec` with its JSONL training file (if any) validated line by line, size-checked as in the lab, and its
    sha256 pinned (`train_data_sha256`); refused with the file and line of the first bad row, or where `spec` was
    pinned to other content. Built-in training data: `spec` unchanged."""
    from hybridviz.training.trainer import is_training_file, pin_training_file as pin_config

    if not is_training_file(spec.train_data):
        return spec
    config = pin_config(TrainConfig(train_data=spec.train_data, extra={"train_data_sha256": spec.train_data_sha256}
                                    if spec.train_data_sha256 else {}))
    return replace(spec, train_data_sha256=config.train_data_sha256)


def check_training_data(spec: GridSpec, log: Callable[[str], None] = print) -> None:
    """Before any unit: the training pairs of a JSONL file, or of any data when a custom evaluation set is chosen,
    go through the zero-shot guard against the grid's chosen evaluation sets (a unit trained earlier is checked
    too, since a continued grid may add sets). Built-in data with built-in sets is checked by the trainer, against
    the same sets, at each training."""
    from hybridviz.tasks import is_custom_task
    from hybridviz.training.data import check_zero_shot
    from hybridviz.training.trainer import _all_pairs, is_training_file

    if not spec.samplers and not spec.alphas:  # no fine-tune in the grid
        return
    if not (is_training_file(spec.train_data) or any(is_custom_task(e["task"]) for e in spec.evaluations)):
        return
    config = spec.train_config(spec.samplers[0] if spec.samplers else "hybrid", 0)
    pairs = _all_pairs(config)  # every pair, the held-out ones included
    check_zero_shot(pairs, spec.guard)
    if is_training_file(spec.train_data):
        log(f"training file {spec.train_data}: {len(set(pairs.group))} ids, {len(pairs)} pairs, sha256 "
            f"{spec.train_data_sha256[:12]}…; no text in {', '.join(spec.guard) or 'no evaluation set'}")


def inherited_settings(out: Path) -> dict:
    """The machine-dependent settings of the bundle at `out` (precision of evaluation and of training), so that
    continuing it on another CPU keeps them instead of that CPU's defaults; {} for a new bundle."""
    if not (Path(out) / MANIFEST).exists():
        return {}
    try:
        spec = read_manifest(out).get("spec") or {}
    except ResultsError:
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
             analysis_plan: dict | None = None, executor=None) -> dict:
    """Run (or continue) every unit of the grid into the bundle at `out`; returns the manifest.

    `executor` (experiments/executors.py): where the units run, `SerialExecutor()` (the default: one after
    another in this process) or `RayExecutor(...)` (side by side as tasks of a Ray cluster); either way the
    results reach the bundle through the same steps and the same atomic writes, and only this process writes
    manifest.json, summary.json and progress.json.
    Fine-tunes go to the run registry (`runs_root`, default cache/runs), where the dashboard finds them.
    `tasks`: evaluate only these benchmarks in this invocation (the others stay pending).
    `refresh`: also re-evaluate (retraining where the weights are gone) every evaluation whose provenance is
    incomplete or whose task protocol has changed since (`stale`). The new files are written beside the old ones
    and swapped in only when complete, and a retrained model must have the old fingerprint (training is
    deterministic): the bundle never loses a finished result.
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
    from hybridviz.experiments.executors import SerialExecutor

    grid = open_grid(out, spec or GridSpec(), log=log, runs_root=runs_root, refresh=refresh, tasks=tasks,
                     replace_retrained=replace_retrained, summarise=summarise, analysis_plan=analysis_plan)
    (executor or SerialExecutor()).run(grid, plan_units(grid, only))
    grid.save(final=True)
    return grid.manifest


def run_unit(grid: Grid, unit: Unit) -> None:
    """One unit, step by step: its work, its model (trained or reused), its pending and stale evaluations, its
    replacement swapped in, done. The executors (experiments/executors.py) run this, in this process or in a
    worker of a Ray cluster."""
    work = unit_work(grid, unit)
    model = train_or_reuse(grid, unit, work)
    evaluate_pending(grid, unit, model, work)
    refresh_stale(grid, unit, model, work)
    if model.replacement is not None and not swap_in_replacement(grid, unit, model, work):
        return  # the old checkpoint's figures stay until every task of the replacement is done
    finish_unit(grid, unit, work)


# ------------------------------------------------------------------------------------------------ the steps


@dataclass
class Grid:
    """One invocation of the grid on the bundle at `out`: the spec, the manifest (the bundle's state) and the
    invocation's options. The steps below are functions of it, each reading and writing the bundle through the
    results store."""
    out: Path
    spec: GridSpec
    manifest: dict
    log: Callable[[str], None] = print
    runs_root: Path | None = None
    refresh: bool = False
    tasks: list[str] | None = None  # benchmarks to evaluate in this invocation (None: all)
    replace_retrained: bool = False
    summarise: bool = True
    units: list[Unit] = field(default_factory=list)  # the whole plan (a unit's +method units are among them)
    train_slot: str = "registry"  # the trainer's lock: "run" where a Ray cluster places the fine-tunes
    # processes per fine-tune: above 1, each unit's training runs under torchrun (DDP, training/distributed.py)
    # and its evaluations in this process, on the saved model, as after a training in this process
    train_procs: int = 1

    @property
    def states(self) -> dict:
        return self.manifest.setdefault("units", {})

    def state(self, unit: Unit) -> dict:
        state = self.states.setdefault(unit.label, {"sampler": unit.sampler, "seed": unit.seed,
                                                    "alpha": unit.alpha, "wall_s": {}})
        if unit.method:
            state["method"] = unit.method
        return state

    def wanted(self, unit: Unit) -> list[dict]:
        """The evaluations of `unit` this invocation runs (all of the unit's tasks, or those of `tasks`)."""
        return [ev for ev in self.spec.evaluations
                if ev["task"] in unit.tasks and (self.tasks is None or ev["task"] in self.tasks)]

    def missing(self, unit: Unit, folder: Path) -> list[dict]:
        """The evaluations of `unit` to run now that `folder` does not hold yet."""
        return [ev for ev in self.wanted(unit) if not is_evaluated(folder / task_dir(ev["task"]))]

    def save(self, summary: bool = False, final: bool = False) -> None:
        from hybridviz.experiments.bundle import write_summary

        self.manifest["updated"] = provenance(None)["created"]
        self.manifest["wall_s"] = round(sum(sum(u.get("wall_s", {}).values()) for u in self.states.values()), 1)
        write_manifest(self.out, self.manifest)
        # the summary re-reads every per-query file: once per finished unit with a quicker 2,000 resamples per
        # test, and 10,000 at the end
        if (summary or final) and self.summarise:
            write_summary(self.out, n_resamples=10_000 if final else 2_000)


def open_grid(out: Path, spec: GridSpec, analysis_plan: dict | None = None, **options) -> Grid:
    """The bundle at `out` opened for `spec` (refused where it holds another grid), with this session, the spec,
    the debias sweep's choice and the analysis plan recorded in its manifest."""
    out = Path(out)
    manifest = read_manifest(out)
    spec = pin_training_file(spec)  # a bad row: file and line, before anything is written
    old = manifest.get("spec") or {}
    if old.get("train_data_sha256") and old.get("train_data") == spec.train_data \
            and old["train_data_sha256"] != spec.train_data_sha256:
        then, now = old["train_data_sha256"][:12], spec.train_data_sha256[:12]
        raise HybridvizError(f"The training file {spec.train_data} has changed since {out} was started "
                             f"(sha256 {then}… there, {now}… now); restore it, or choose another --out for the "
                             f"new file.")
    conflicts = spec_conflicts(manifest["spec"], asdict(spec)) if manifest.get("spec") else []
    if conflicts:
        raise HybridvizError(f"{out} holds a grid with other settings ({'; '.join(conflicts)}); choose another "
                             f"--out or remove it.")
    check_training_data(spec, log=options.get("log", print))  # the zero-shot guard, before anything is written
    manifest.setdefault("provenance", provenance(None))
    # every start or resume: the code of each unit is in its own metrics.json / config.json provenance too
    manifest.setdefault("sessions", []).append(provenance(None))
    manifest["spec"] = asdict(spec)
    if spec.train_data_sha256:  # where the pairs came from (the spec's sha256 is what a continuation must match)
        manifest["training_file"] = {"path": spec.train_data, "resolved": str(Path(spec.train_data).resolve()),
                                     "sha256": spec.train_data_sha256,
                                     "bytes": Path(spec.train_data).stat().st_size}
    if spec.sampler_method == "best" and resolve_method("best"):
        from hybridviz.encoders.debias import SWEEP_PATH

        sweep = json.loads(SWEEP_PATH.read_text())
        manifest["debias_sweep"] = {"best_spec": sweep["best_spec"], "chosen": sweep["chosen"],
                                    "selection": sweep["selection"], "file": "cache/reference/debias-sweep/sweep.json"}
    manifest.setdefault("units", {})
    if analysis_plan is not None:  # fixed in writing before the first unit (experiments/plan.py)
        from hybridviz.experiments.plan import record_plan

        record_plan(manifest, analysis_plan)
        write_manifest(out, manifest)
    return Grid(out, spec, manifest, units=plan(spec), **options)


def plan_units(grid: Grid, only: list[str] | None = None) -> list[Unit]:
    """Step 1: the units of the plan this invocation runs, in the plan's order (`only`: these labels)."""
    return [u for u in grid.units if not only or u.label in only]


@dataclass
class UnitWork:
    """What a unit has to do in this invocation: `pending` evaluations to run into `folder` (the unit's folder,
    or its replacement's while it is evaluated anew) and `stale` ones to redo in place (--refresh)."""
    folder: Path
    pending: list[dict]
    stale: list[dict]
    done: list[dict] = field(default_factory=list)  # evaluations written in this invocation
    swapped: bool = False  # a replacement swapped in: the unit's figures changed


def unit_work(grid: Grid, unit: Unit) -> UnitWork:
    """The unit's pending and stale evaluations now (earlier units may have changed them: a replaced sampler unit
    makes its +method units pending)."""
    grid.state(unit)
    folder = unit_folder(grid.out, unit.label)
    pending = grid.missing(unit, folder)
    stale_ones = [ev for ev in grid.wanted(unit) if grid.refresh and ev not in pending
                  and is_evaluated(folder / task_dir(ev["task"]))
                  and stale(read_metrics(folder / task_dir(ev["task"])))]
    return UnitWork(folder, pending, stale_ones)


@dataclass
class UnitModel:
    """The model a unit evaluates (`spec`: a run's weights, with its +method), loaded once by whichever step needs
    it first; `fingerprints` are the definitions its evaluations may carry. `replacement`: the unit's
    models/<label>.retrained/ folder while it is evaluated anew on a retrained checkpoint."""
    spec: str
    precision: str
    encoder: object = None
    fingerprints: set = field(default_factory=set)
    replacement: Path | None = None
    checked: Encoder | None = None  # the retrained model, loaded by its fingerprint check

    def load(self):
        if self.encoder is None:
            loaded = load_encoder(self.spec, precision=self.precision)
            # taken before any encode: evaluations written before ef07552 carry the legacy definition
            # (a debiased encoder: no legacy evaluations, and an index-time one has no fingerprint before fitting)
            if isinstance(loaded, Encoder):
                self.fingerprints.update({loaded.fingerprint, loaded.legacy_fingerprint()})
            self.encoder = loaded
        return self.encoder


def train_or_reuse(grid: Grid, unit: Unit, work: UnitWork) -> UnitModel:
    """Step 2: the unit's model. A fine-tune is trained when the bundle has no training record of it, or when it
    has work to do and its weights are gone (weights are not part of a bundle); a (re)trained model must be the
    checkpoint the bundle evaluated (`check_same_weights`), else with --replace-retrained the unit is evaluated
    anew into its replacement folder (`work` then points there). The training record goes into the bundle."""
    state = grid.state(unit)
    model = grid.spec.model
    checked = None
    replacement = staging_folder(grid.out, unit.label)
    if unit.config is not None:
        config = trained_config(grid, unit.config)
        run_id = config.run_id()
        state["run_id"] = run_id
        run = Run(run_id, grid.runs_root)
        model = f"run:{run_id}" if grid.runs_root is None else str(run.model_dir)
        # the +method units of this run need its weights too: retrain here, so a replacement starts here
        derived = grid.replace_retrained and not unit.method and any(
            u.method and u.config is not None and trained_config(grid, u.config).run_id() == run_id
            and grid.missing(u, unit_folder(grid.out, u.label)) for u in grid.units)
        busy = bool(work.pending or work.stale or derived or replacement.is_dir())
        trained = False
        if "train" not in state["wall_s"] or (busy and not run.model_dir.is_dir()):
            run = _train(grid, unit, config, state)
            trained = True
        # before a training record or any evaluation enters the bundle (weights trained by an earlier, refused
        # invocation are checked too)
        if trained or busy:
            try:
                checked = check_same_weights(grid.out, unit.label, model, grid.spec.precision)
            except DifferentWeights as differ:
                if not grid.replace_retrained or unit.method:
                    raise
                checked = differ.encoder
                grid.log(f"[{unit.label}] {differ}: evaluating the retrained model anew on every task")
                fresh_folder(replacement)  # an interrupted replacement by other weights is removed
                state["replacing"] = {"old_fingerprints": differ.recorded, "new_fingerprint": checked.fingerprint}
                trained = True  # its training record goes with the new evaluations
        if trained:
            copy_training_record(run.dir, (replacement if replacement.is_dir() else work.folder) / "training")
            grid.save()
        if replacement.is_dir():  # every task of the unit, into the replacement
            work.folder, work.pending, work.stale = replacement, grid.missing(unit, replacement), []
    found = UnitModel(f"{model}+{unit.method}" if unit.method else model, grid.spec.precision,
                      replacement=replacement if replacement.is_dir() else None, checked=checked)
    if checked is not None and not unit.method:  # the fingerprint check loaded this very model
        found.encoder = checked
        found.fingerprints.update({checked.fingerprint, checked.legacy_fingerprint()})
    return found


def trained_config(grid: Grid, config: TrainConfig) -> TrainConfig:
    """The unit's TrainConfig as it is trained: under n > 1 DDP processes a step averages the gradients of n
    sampler batches (other weights than one process trains), so the process count joins the config and its run id;
    with one process the config, and its run id, are the spec's own."""
    if grid.train_procs > 1:
        return replace(config, extra={**config.extra, "ddp_processes": int(grid.train_procs)})
    return config


def _train(grid: Grid, unit: Unit, config: TrainConfig, state: dict) -> Run:
    start = time.perf_counter()
    run_id = config.run_id()
    if grid.train_procs > 1:
        grid.log(f"[{unit.label}] training {run_id} with {grid.train_procs} DDP processes (torchrun)")
        run = train_distributed(config, grid.train_procs, root=grid.runs_root, benchmarks=grid.spec.guard,
                                slot=grid.train_slot)
    else:
        grid.log(f"[{unit.label}] training {run_id}")
        run = train(config, root=grid.runs_root, benchmarks=grid.spec.guard, slot=grid.train_slot)
    # how the weights were trained, as the trainer recorded it (the config's ddp_processes names it in the run id);
    # a run that was finished already keeps the record of its own training
    world = int(run.status().get("world_size") or 1)
    if world > 1:
        state["ddp"] = {"processes": world, "launcher": "torchrun",
                        "backend": "gloo" if encoding_device() == "cpu" else "nccl"}
    else:
        state.pop("ddp", None)
    if run.status().get("state") != "done":
        state["state"] = f"training {run.status().get('state')}"
        grid.save(summary=True)
        raise HybridvizError(f"Fine-tune {run_id} ended {run.status().get('state')}; "
                             f"rerun the same command to resume it.")
    state["wall_s"]["train"] = round(time.perf_counter() - start, 1)
    return run


def _evaluate(grid: Grid, model: UnitModel, ev: dict, folder: Path) -> None:
    evaluate(model.spec, ev["task"], languages=ev.get("languages"), limit=ev.get("limit"), out_dir=folder,
             precision=grid.spec.precision, batch_size=grid.spec.encode_batch_size, layouts=grid.out / LAYOUTS,
             log=grid.log, encoder=model.load())


def evaluate_pending(grid: Grid, unit: Unit, model: UnitModel, work: UnitWork) -> None:
    """Step 3: every pending evaluation of the unit into its folder (or its replacement's), the manifest saved
    after each. Each is written into <task>.partial/ and swapped in once complete: an evaluation cut short (an
    error, a killed process) never leaves a folder that looks like a result, and the next run starts it anew."""
    state = grid.state(unit)
    for ev in work.pending:
        grid.log(f"[{unit.label}] evaluating {ev['task']}")
        start = time.perf_counter()
        folder = work.folder / task_dir(ev["task"])
        staged = fresh_folder(pending_folder(folder))  # what a killed attempt left is removed first
        try:
            _evaluate(grid, model, ev, staged)
        except BaseException:
            remove_folder(staged)
            raise
        swap_in(staged, folder)
        state["wall_s"][f"eval {ev['task']}"] = round(time.perf_counter() - start, 1)
        work.done.append(ev)
        grid.save()


def refresh_stale(grid: Grid, unit: Unit, model: UnitModel, work: UnitWork) -> None:
    """Step 4: every stale evaluation of the unit redone beside the old one (<task>.refresh/) and swapped in once
    complete; refused, the old one kept, where the model is not the one the old evaluation recorded."""
    state = grid.state(unit)
    for ev in work.stale:
        folder = work.folder / task_dir(ev["task"])
        grid.log(f"[{unit.label}] re-evaluating {ev['task']} (provenance incomplete, protocol changed, or "
                 "languages its model does not support)")
        encoder = model.load()
        old = read_metrics(folder)
        if old["model"]["fingerprint"] not in (model.fingerprints or {encoder.fingerprint}):
            raise HybridvizError(f"{unit.label}: the model now has fingerprint {encoder.fingerprint[:12]}, the "
                                 f"bundle's evaluation {old['model']['fingerprint'][:12]}; not replacing it.")
        redo = refresh_folder(folder)
        remove_folder(redo)
        _evaluate(grid, model, ev, redo)
        swap_in(redo, folder)
        state.setdefault("refreshed", []).append(ev["task"])
        work.done.append(ev)  # the summary is refreshed below
        grid.save()


def swap_in_replacement(grid: Grid, unit: Unit, model: UnitModel, work: UnitWork) -> bool:
    """Step 5: a unit evaluated anew on a retrained checkpoint replaces its old evaluations once the replacement
    holds every task of the unit (True); until then the unit stays "replacing" (False)."""
    replacement = model.replacement
    if not all(is_evaluated(replacement / task_dir(task)) for task in unit.tasks):
        grid.state(unit)["state"] = "replacing"
        grid.save()
        return False
    swap_in_retrained(grid.out, unit, grid.units, grid.states, replacement)
    grid.log(f"[{unit.label}] replaced by the retrained checkpoint "
             f"{model.checked.fingerprint[:12] if model.checked else ''}")
    work.swapped = True
    return True


def finish_unit(grid: Grid, unit: Unit, work: UnitWork) -> None:
    """A unit finished now (or changed: evaluated, refreshed or replaced) is marked done and the summary
    refreshed."""
    state = grid.state(unit)
    if state.get("state") != "done" or work.done or work.swapped:
        state["state"] = "done"
        grid.save(summary=True)


def merge_bundle(src: Path, dest: Path) -> list[str]:
    """Copy the finished units of the bundle at `src` into the bundle at `dest` (created when absent); returns
    their labels. Both must be one grid (the same settings: `spec_conflicts`), so units run in parallel, each
    into a folder of its own (`experiment --only <unit> --no-summary`, e.g. on a lent GPU machine), become one
    bundle. Unfinished units stay behind; a unit `dest` already holds is refused, never overwritten. Run
    `summarise` on `dest` afterwards."""
    src, dest = Path(src), Path(dest)
    theirs = read_manifest(src)
    if not theirs:
        raise HybridvizError(f"No result bundle at {src} (no {MANIFEST}).")
    ours = read_manifest(dest) or {
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
        if not unit_folder(src, label).is_dir():
            raise HybridvizError(f"{src}'s manifest says {label} is done, but models/{label}/ is missing.")
    copy_layouts(src, dest)
    for label, state in done.items():
        copy_unit(src, dest, label)
        ours["units"][label] = state
    ours["sessions"] = ours.get("sessions", []) + [s for s in theirs.get("sessions", [])
                                                   if s not in ours.get("sessions", [])]
    ours["updated"] = max(ours.get("updated", ""), theirs.get("updated", ""))
    ours["wall_s"] = round(sum(sum(u.get("wall_s", {}).values()) for u in ours["units"].values()), 1)
    write_manifest(dest, ours)
    return sorted(done)


def swap_in_retrained(out: Path, unit: Unit, units: list[Unit], units_state: dict, replacement: Path) -> None:
    """The unit's complete evaluations of its retrained checkpoint replace the old checkpoint's; its +method
    units' figures (of the old checkpoint) are removed and become pending."""
    swap_in(replacement, unit_folder(out, unit.label))
    state = units_state[unit.label]
    replacing = state.pop("replacing", {})
    state.pop("refreshed", None)
    state["replaced"] = {**replacing, "machine": provenance(None)["machine"]}
    for derived in units:
        if derived.method and derived.config is not None and derived.config.run_id() == unit.config.run_id():
            remove_folder(unit_folder(out, derived.label))
            if derived.label in units_state:
                units_state[derived.label].update(wall_s={}, state="pending")


def check_same_weights(out: Path, label: str, model: str, precision: str) -> Encoder | None:
    """A (re)trained run must be the model the bundle already evaluated for its sampler unit (`label` less any
    "+method"): training reproduces its weights only on the same kind of machine, and a unit whose evaluations
    came from two different checkpoints would be compared as one run. Returns the loaded model (None when the
    bundle has no evaluation of the unit yet, and nothing was loaded)."""
    plain = label.split("+")[0]
    # a replacement in progress: its own evaluations are the ones the retrained model must match
    replacement = staging_folder(out, plain)
    recorded = recorded_fingerprints(replacement if replacement.is_dir() else unit_folder(out, plain))
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


def with_overrides(spec: GridSpec, **kwargs) -> GridSpec:
    return replace(spec, **{k: v for k, v in kwargs.items() if v is not None})
