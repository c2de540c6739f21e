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
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from hybridviz.experiments.bundle import training_extent  # noqa: F401  (its home: a page reads it without torch)
from hybridviz.fileio import read_jsonl, write_json_atomic
from hybridviz.provenance import provenance
from typing import TYPE_CHECKING

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
    status = run.status()
    validation = {r["step"]: r for r in read_jsonl(run.dir / "validation.jsonl")}  # a resumed run: last wins
    probes = {str(r["step"]): r for r in read_jsonl(run.dir / "probes.jsonl")}
    log = run.train_log()
    pool = run.dir / "validation_pool.json"
    return {"run_id": run.id, "state": status.get("state"), "stopped_at": status.get("stopped_at"),
            "best_step": status.get("best_step"), "best_metric": status.get("best_metric"),
            "beats_base": status.get("beats_base"),
            "validation": [validation[s] for s in sorted(validation)],
            "probes": list(probes.values()),
            "train_loss": [{"step": r["step"], "loss": round(r["loss"], 5)} for r in log],
            "step_seconds": _median_step(log),
            "pool": json.loads(pool.read_text()) if pool.is_file() else None}


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
