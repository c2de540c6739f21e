"""Learning curves: each sampler × seed trained to a maximum budget, scored on held-out groups along the way.

    python -m hybridviz curves --out cache/partial/curves-me5-mlqa-r --seeds 0 --max-steps 1500

Every run is a registry run of the *converged regime* (`CONVERGED`): the fast step, a warm-up then a constant
learning rate, AdamW's weight decay as in the paper, 20 % of the training data's paragraph components held out,
and the held-out pool (every sentence of their paragraphs) scored every `eval_steps` (training/validation.py).
Without `patience` a run trains to the maximum budget, so the curve shows where the criterion peaks and how it
behaves after: the evidence for choosing the maximum budget and the patience of the converged bundles. A seeded
XQuAD-R paragraph sample is scored at `probe_steps` and at the best checkpoint (reported only; never used to
choose). Results go to `<out>/curves.json` after each run (resumable: a finished run is read, an interrupted one
resumes from its last checkpoint).

An early-stopped result bundle (`experiment --early-stopping`) holds the same curves, one per sampler unit and
seed, in its units' training records: `bundle_curves` reads them into the same shape, so the Robustness page draws
a converged bundle's curves with a band over its seeds beside the curves-* checks.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from hybridviz.experiments.bundle import BundleError, group_of
from hybridviz.fileio import read_jsonl, write_json_atomic
from hybridviz.provenance import provenance
from hybridviz.results.format import ResultsError
from hybridviz.results.store import read_manifest, read_training_record

if TYPE_CHECKING:  # the trainer (torch) is imported where a run is made: the pages read curves without it
    from hybridviz.training.trainer import TrainConfig

# the converged regime: what every early-stopped unit shares with the fast step (the analysis plan names it)
REGIME = {"lr_scheduler": "constant_with_warmup", "weight_decay": 0.01, "holdout_pool": "paragraphs",
          "criterion": "mean_mAP"}
HOLDOUT = 0.2


WARMUP_STEPS = 100


def converged_extra(eval_steps: int, patience: int, probe_steps: list[int] | None = None) -> dict:
    """The `TrainConfig.extra` of the converged regime (the curves and `experiment --early-stopping` share it)."""
    from hybridviz.training.trainer import FAST_STEP

    extra = {**FAST_STEP, **REGIME, "eval_steps": int(eval_steps), "patience": int(patience)}
    if probe_steps:
        extra["probe_steps"] = sorted(int(s) for s in probe_steps)
    return extra


def converged_config(base: TrainConfig, max_steps: int, eval_steps: int, patience: int = 0,
                     probe_steps: list[int] | None = None, warmup_steps: int = WARMUP_STEPS) -> TrainConfig:
    """`base` in the converged regime: train up to `max_steps`, validate every `eval_steps`, stop after
    `patience` validations without a gain (0: never), keep the best checkpoint."""
    return replace(base, steps=int(max_steps), warmup_steps=int(warmup_steps), holdout=HOLDOUT,
                   save_steps=int(eval_steps),
                   extra={**base.extra, **converged_extra(eval_steps, patience, probe_steps)})


def curve_record(run) -> dict:
    """What a finished (or running) run's files say about its curve."""
    pool = run.dir / "validation_pool.json"
    return {"run_id": run.id, **_record(run.status(), read_jsonl(run.dir / "validation.jsonl"),
                                        read_jsonl(run.dir / "probes.jsonl"), run.train_log(),
                                        json.loads(pool.read_text()) if pool.is_file() else None)}


def _record(status: dict, validation: list[dict], probes: list[dict], log: list[dict], pool: dict | None) -> dict:
    """A run's curve from its training record's contents (a run folder's or a bundle unit's): a step validated
    twice (a resumed run) counts once, its last record."""
    validation = {r["step"]: r for r in validation}
    probes = {str(r["step"]): r for r in probes}
    return {"state": status.get("state"), "stopped_at": status.get("stopped_at"),
            "best_step": status.get("best_step"), "best_metric": status.get("best_metric"),
            "beats_base": status.get("beats_base"),
            "validation": [validation[s] for s in sorted(validation)],
            "probes": list(probes.values()),
            "train_loss": [{"step": r["step"], "loss": round(r["loss"], 5)} for r in log],
            "step_seconds": _median_step(log),
            "pool": pool}


def _median_step(log: list[dict]) -> float | None:
    gaps = sorted(b["seconds"] - a["seconds"] for a, b in zip(log, log[1:]) if b["seconds"] > a["seconds"])
    return round(gaps[len(gaps) // 2], 3) if gaps else None


def run_curves(out: Path, base: TrainConfig, samplers=("x-x-mono", "x-y", "hybrid"), seeds=(0,),
               max_steps: int = 1500, eval_steps: int = 100, patience: int = 0, probe_steps=(100, 300, 1000),
               warmup_steps: int = 100, log: Callable[[str], None] = print, record_only: bool = False) -> dict:
    """Train every sampler × seed in the converged regime (seed by seed, so each seed completes a comparison);
    `<out>/curves.json` is rewritten after each run. `record_only`: train nothing, record what the registry holds
    now (a run still training is recorded with its state and its curve so far)."""
    from hybridviz.training.trainer import train
    from hybridviz.training.validation import effective_pool

    path = Path(out) / "curves.json"
    state = json.loads(path.read_text()) if path.is_file() else {}
    state.setdefault("provenance", provenance(base.seed))
    template = converged_config(base, max_steps, eval_steps, patience, list(probe_steps), warmup_steps)
    state["config"] = asdict(template)
    state["regime"] = {"max_steps": max_steps, "eval_steps": eval_steps, "patience": patience,
                       "warmup_steps": warmup_steps, "probe_steps": list(probe_steps), "holdout": HOLDOUT,
                       "criterion": template.criterion,
                       "pool": effective_pool(template.holdout_pool, template.train_data)}
    runs: dict = state.setdefault("runs", {})
    for seed in seeds:
        for sampler in samplers:
            config = replace(template, sampler=sampler, seed=int(seed))
            label = f"{sampler}-s{seed}"
            if runs.get(label, {}).get("state") == "done" and runs[label].get("run_id") == config.run_id():
                continue
            if record_only:
                from hybridviz.training.runs import Run

                run = Run(config.run_id())
                if run.dir.joinpath("validation.jsonl").is_file():
                    runs[label] = {"sampler": sampler, "seed": int(seed), **curve_record(run), "wall_s": None}
                continue
            start = time.perf_counter()
            log(f"curves: {label} ({config.run_id()}), up to {max_steps} steps, validation every {eval_steps}")
            run = train(config)
            runs[label] = {"sampler": sampler, "seed": int(seed), **curve_record(run),
                           "wall_s": round(time.perf_counter() - start, 1)}
            state["updated"] = provenance(base.seed)["created"]
            write_json_atomic(path, state)
    write_json_atomic(path, state)
    return state


def read_curves(path: Path) -> dict | None:
    path = Path(path)
    path = path / "curves.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def find_curves(root: Path | None = None) -> list[str]:
    """The learning-curve checks beside the bundles (`<reference>/curves-*/curves.json`), by folder name."""
    from hybridviz.data.paths import REFERENCE_DIR

    root = Path(root or REFERENCE_DIR)
    return sorted(p.parent.name for p in root.glob("curves-*/curves.json")) if root.exists() else []


def bundle_curves(bundle) -> dict | None:
    """The learning curves an early-stopped result bundle holds, in the shape `run_curves` writes (curve_frame,
    probe_frame, summary_rows and the figures read either): {"source": "bundle", "bundle", "config", "regime",
    "stopping_plan", "runs": {unit label: {sampler, seed, run_id, state, stopped_at, best_step, best_metric,
    validation, probes, train_loss, step_seconds, pool, wall_s}}}.

    `bundle`: a Bundle or a bundle's folder. Each sampler unit's training record (models/<label>/training, read
    through the results store) is one run: the validation curve on the held-out pool, the XQuAD-R sample's probes
    and the stop and best steps its status recorded. Only units trained with early stopping (`eval_steps` in their
    training config) count; units of a training-free method and the extra alpha points (`hybrid-a<alpha>`, one seed)
    are left out. The regime (maximum budget, validation interval, patience, warm-up, probe steps, criterion, pool)
    is the units' training config's (the grid trains every unit from one spec) and the pool the validation record's.
    None for a bundle without an early-stopped unit (a fixed-budget bundle, or one whose first unit is training)."""
    path = Path(getattr(bundle, "path", bundle))
    try:
        manifest = bundle.manifest if hasattr(bundle, "manifest") else read_manifest(path)
        spec = manifest.get("spec", {})
        runs, configs = [], []
        for label, unit in manifest.get("units", {}).items():
            sampler = group_of(unit, spec.get("alpha", 0.5))
            if unit.get("method") or sampler == "base" or sampler.startswith("hybrid-a"):
                continue
            record = read_training_record(path, label)
            config = (record or {}).get("config", {})
            if not config.get("extra", {}).get("eval_steps"):
                continue
            configs.append(config)
            runs.append((label, {"sampler": sampler, "seed": unit.get("seed", config.get("seed")),
                                 "run_id": unit.get("run_id", config.get("run_id")),
                                 **_record(record["status"], record["validation"], record["probes"],
                                           record["train_log"], record["pool"]),
                                 "wall_s": (unit.get("wall_s") or {}).get("train")}))
    except ResultsError as exc:
        raise BundleError(str(exc)) from None
    if not runs:
        return None
    order = {s: i for i, s in enumerate(spec.get("samplers") or ())}
    runs.sort(key=lambda x: (order.get(x[1]["sampler"], len(order)), x[1]["sampler"], x[1]["seed"] or 0))
    config = configs[0]
    extra = config.get("extra", {})
    pool = next((r["pool"] for _, r in runs if r.get("pool")), None) or {}
    regime = {"max_steps": config.get("steps"), "eval_steps": extra.get("eval_steps"),
              "patience": extra.get("patience", 0), "warmup_steps": config.get("warmup_steps"),
              "probe_steps": list(extra.get("probe_steps", [])), "holdout": config.get("holdout"),
              "criterion": extra.get("criterion", "mean_mAP"), "pool": pool.get("pool", extra.get("holdout_pool"))}
    return {"source": "bundle", "bundle": path.name, "provenance": manifest.get("provenance"), "config": config,
            "regime": regime, "stopping_plan": (manifest.get("analysis_plan") or {}).get("plan", {}).get("stopping"),
            "runs": dict(runs)}


def curve_frame(state: dict):
    """One row per (run, validation step): sampler, seed, step, mono/cross/multi/mean mAP, and whether the step
    is the run's best (kept) checkpoint."""
    import pandas as pd

    rows = [{"sampler": r["sampler"], "seed": r["seed"], "step": v["step"], "best": v["step"] == r.get("best_step"),
             **{k: v[k] for k in ("mono_mAP", "cross_mAP", "multi_mAP", "mean_mAP") if k in v}}
            for r in (state or {}).get("runs", {}).values() for v in r.get("validation", [])]
    return pd.DataFrame(rows, columns=["sampler", "seed", "step", "best", "mono_mAP", "cross_mAP", "multi_mAP",
                                       "mean_mAP"])


def probe_frame(state: dict):
    """One row per (run, probe): the XQuAD-R sample's mAP at a step (or at the best checkpoint)."""
    import pandas as pd

    rows = []
    for r in (state or {}).get("runs", {}).values():
        for p in r.get("probes", []):
            step = r.get("best_step") if p["step"] == "best" else p["step"]
            rows.append({"sampler": r["sampler"], "seed": r["seed"], "step": step, "at": str(p["step"]),
                         **{k: p.get(k) for k in ("mono_mAP", "cross_mAP", "multi_mAP")}})
    return pd.DataFrame(rows, columns=["sampler", "seed", "step", "at", "mono_mAP", "cross_mAP", "multi_mAP"])


def summary_rows(state: dict) -> list[dict]:
    """Per sampler: seeds finished, best step (each seed), held-out figures at the best step (mean over seeds)."""
    import numpy as np

    out = []
    runs = [r for r in (state or {}).get("runs", {}).values() if r.get("state") == "done"]
    for sampler in dict.fromkeys(r["sampler"] for r in runs):
        mine = [r for r in runs if r["sampler"] == sampler]
        best = [next((v for v in r["validation"] if v["step"] == r["best_step"]), None) for r in mine]
        best = [b for b in best if b]
        out.append({"sampler": sampler, "seeds": len(mine), "best steps": ", ".join(str(r["best_step"]) for r in mine),
                    "stopped at": ", ".join(str(r["stopped_at"]) for r in mine),
                    **{f"{s} mAP at best": float(np.mean([b[f"{s}_mAP"] for b in best])) if best else None
                       for s in ("mono", "cross", "multi")},
                    "step s": float(np.median([r["step_seconds"] for r in mine if r.get("step_seconds")]))
                    if any(r.get("step_seconds") for r in mine) else None})
    return out


def seed_coverage(frame) -> list[dict]:
    """Per sampler of a curve frame: its seeds, the last validation step every seed reached, the last one two or
    more reached (where the figure's band over seeds ends) and the last step any reached. Early-stopped runs end
    at different steps, so beyond the first stop a mean is over fewer seeds."""
    out = []
    for sampler in dict.fromkeys(frame["sampler"]):
        part = frame[frame["sampler"] == sampler]
        n = part["seed"].nunique()
        count = part.groupby("step")["seed"].nunique()
        out.append({"sampler": sampler, "seeds": int(n),
                    "all seeds to": int(count[count == n].index.max()) if (count == n).any() else None,
                    "2+ seeds to": int(count[count >= 2].index.max()) if (count >= 2).any() else None,
                    "last step": int(count.index.max())})
    return out


def coverage_text(frame, labels=str) -> str:
    """One sentence on how many seeds each sampler's curve stands on along the run (seed_coverage)."""
    parts = []
    for c in seed_coverage(frame):
        said = f"{labels(c['sampler'])}: {c['seeds']} seed{'s' if c['seeds'] != 1 else ''}"
        if c["seeds"] == 1:
            parts.append(f"{said} (a curve, no band) to step {c['last step']}")
            continue
        together = c["all seeds to"] if c["all seeds to"] is not None else -1  # -1: no step had them all
        said += f" to step {together}" if together >= 0 else " (no step validated by all)"
        if c["2+ seeds to"] is not None and c["2+ seeds to"] > together:
            said += f", 2 or more to {c['2+ seeds to']}"
        if c["last step"] > max(c["2+ seeds to"] or -1, together):
            said += f", one seed alone to {c['last step']}"
        parts.append(said)
    return "; ".join(parts)


def probe_summary(state: dict) -> list[dict]:
    """Per sampler and probe (each probe step, then the best checkpoint): the seeds that reached it and the XQuAD-R
    sample's multilingual mAP over them (mean, min, max), with the mono and cross means. A run that stopped
    before a probe step has no probe there: `seeds` says how many runs the row stands on."""
    import numpy as np

    frame = probe_frame(state)
    out = []
    for sampler in dict.fromkeys(frame["sampler"]):
        part = frame[frame["sampler"] == sampler]
        ats = sorted(set(part["at"]), key=lambda a: (a == "best", int(a) if a.isdigit() else 0, a))
        for at in ats:
            rows = part[part["at"] == at]
            multi = rows["multi_mAP"].dropna().astype(float)
            out.append({"sampler": sampler, "at": "best checkpoint" if at == "best" else f"step {at}",
                        "seeds": int(rows["seed"].nunique()),
                        "steps": ", ".join(str(s) for s in rows["step"]) if at == "best" else at,
                        "multi mAP": float(multi.mean()) if len(multi) else None,
                        "multi min": float(multi.min()) if len(multi) else None,
                        "multi max": float(multi.max()) if len(multi) else None,
                        **{f"{s} mAP": float(np.mean(rows[f"{s}_mAP"].dropna())) if rows[f"{s}_mAP"].notna().any()
                           else None for s in ("mono", "cross")}})
    return out


def curve_set_up(name: str, state: dict) -> str:
    """A curve figure's title: where the curves come from and the set-up they trained under."""
    cfg, regime = state.get("config", {}), state.get("regime", {})
    source = f"early-stopped bundle {name}" if state.get("source") == "bundle" else name
    return (f"{source}: {cfg.get('model')} · {cfg.get('train_data')} · batch {cfg.get('batch_size')} · lr "
            f"{cfg.get('learning_rate') or 0:g} after {regime.get('warmup_steps')} warm-up steps · validated every "
            f"{regime.get('eval_steps')} steps")


def regime_text(state: dict) -> str:
    """The sentence under a curve figure: the kept checkpoint's criterion, the pool, the budget and the stopping."""
    regime = state.get("regime", {})
    patience = regime.get("patience")
    stopping = f"stopping after {patience} validations without a gain" if patience else "without early stopping"
    probes = ", ".join(str(s) for s in regime.get("probe_steps") or [])
    return (f"Criterion for the kept checkpoint: {regime.get('criterion')} on the held-out pool "
            f"({regime.get('pool')}, {regime.get('holdout') or 0:.0%} of the training data's groups held out); each "
            f"run trains up to {regime.get('max_steps')} steps, {stopping}"
            + (f"; the XQuAD-R sample is scored at steps {probes} and at the best checkpoint." if probes else "."))
