"""The learning-rate / warm-up sweep: short fine-tunes scored on held-out MLQA-R groups, never on test data.

    python -m hybridviz sweep --out cache/reference/lr-sweep

Stage 1 tries each learning rate at the default warm-up; stage 2 tries the other warm-ups at the best
learning rate. Every fine-tune is a registry run (resumable, skipped when done); scores are kept in
`<out>/sweep.json` after each run, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np

from hybridviz.evaluate import evaluate_setting
from hybridviz.provenance import provenance
from hybridviz.fileio import write_json_atomic
from hybridviz.training.trainer import TrainConfig, train, validation_pairs

LEARNING_RATES = (1e-5, 3e-5, 1e-4)
WARMUP_SHARES = (0.1, 0.0)  # the first is stage 1's; the others are tried at the best learning rate
HOLDOUT = 0.2


def validation_scores(model: str, config: TrainConfig, precision: str) -> dict:
    """Macro mAP (mono, cross, multi) of `model` on the held-out groups of `config`'s training data."""
    from hybridviz.encoders import load_encoder
    from hybridviz.training.data import pairs_corpus

    corpus = pairs_corpus(validation_pairs(config))
    encoder = load_encoder(model, precision=precision)
    Q = encoder.encode(corpus.query_texts, "query")
    C = encoder.encode(corpus.cand_texts, "passage")
    scores = {"queries": len(corpus.query_ids), "candidates": len(corpus.cand_ids)}
    for setting in ("mono", "cross", "multi"):
        scores[f"{setting}_mAP"] = evaluate_setting(corpus, setting, Q, C)[0]["macro"]["mAP"]
    return scores


def run_sweep(out: Path, base: TrainConfig | None = None, learning_rates=LEARNING_RATES,
              warmup_shares=WARMUP_SHARES, log: Callable[[str], None] = print) -> dict:
    base = replace(base or TrainConfig(), holdout=HOLDOUT)
    path = Path(out) / "sweep.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    state.setdefault("provenance", provenance(base.seed))
    state["base_config"] = asdict(base)
    state["selection"] = (f"validation: {HOLDOUT:.0%} of the {base.train_data} question groups held out of training "
                          "(whole parallel groups; a JSONL file's ids); criterion: multilingual mAP on them")
    trials: dict = state.setdefault("trials", {})

    def save():
        state["updated"] = provenance(base.seed)["created"]
        write_json_atomic(path, state)

    if "base" not in trials:
        trials["base"] = {"learning_rate": None, "warmup_steps": None,
                          **validation_scores(base.model, base, base.mixed_precision)}
        save()

    def trial(lr: float, share: float) -> dict:
        config = replace(base, learning_rate=lr, warmup_steps=int(round(share * base.steps)))
        key = config.run_id()
        if key not in trials:
            start = time.perf_counter()
            log(f"sweep: lr {lr:g}, warm-up {config.warmup_steps} steps ({key})")
            run = train(config)
            losses = [r["loss"] for r in run.train_log()]
            trials[key] = {"learning_rate": lr, "warmup_steps": config.warmup_steps, "run_id": key,
                           "first_loss": losses[0], "last_loss_mean10": sum(losses[-10:]) / len(losses[-10:]),
                           **validation_scores(f"run:{key}", config, config.mixed_precision),
                           "wall_s": round(time.perf_counter() - start, 1)}
            save()
            log(f"  multi mAP {trials[key]['multi_mAP']:.4f}")
        return trials[key]

    stage1 = [trial(lr, warmup_shares[0]) for lr in learning_rates]
    best_lr = max(stage1, key=lambda t: t["multi_mAP"])["learning_rate"]
    stage2 = [trial(best_lr, share) for share in warmup_shares[1:]]
    best = max(stage1 + stage2, key=lambda t: t["multi_mAP"])
    state["chosen"] = {"learning_rate": best["learning_rate"], "warmup_steps": best["warmup_steps"],
                       "multi_mAP": best["multi_mAP"], "base_multi_mAP": trials["base"]["multi_mAP"]}
    save()
    return state


def run_budget_check(out: Path, budgets=(100, 300), samplers=("x-x-mono", "x-y", "hybrid"), seed: int = 0,
                     base: TrainConfig | None = None, log: Callable[[str], None] = print) -> dict:
    """Does the ranking of samplers change with the step budget? Each sampler trained at each budget (held-out
    groups of the training data removed) and scored on those groups, beside the base model (step 0); results in
    `<out>/budget.json`, resumable."""
    base = replace(base or TrainConfig(), holdout=HOLDOUT, seed=seed)
    path = Path(out) / "budget.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    state.setdefault("provenance", provenance(seed))
    state["base_config"] = asdict(base)  # the set-up (encoder, batch, lr, data) every budget shares
    state["selection"] = (f"validation: {HOLDOUT:.0%} of the {base.train_data} question groups held out of "
                          "training; multilingual / cross / mono mAP on them")
    trials: dict = state.setdefault("trials", {})
    if "base" not in trials:  # step 0 of every learning curve: what fine-tuning gains or costs on these groups
        log(f"budget: base {base.model} on the held-out groups")
        trials["base"] = {"sampler": "base", "steps": 0, "run_id": None,
                          **validation_scores(base.model, base, base.mixed_precision)}
        write_json_atomic(path, state)
    for steps in budgets:
        for sampler in samplers:
            config = replace(base, sampler=sampler, steps=int(steps))
            key = config.run_id()
            if key in trials:
                continue
            start = time.perf_counter()
            log(f"budget: {sampler}, {steps} steps ({key})")
            train(config)
            trials[key] = {"sampler": sampler, "steps": int(steps), "run_id": key,
                           **validation_scores(f"run:{key}", config, config.mixed_precision),
                           "wall_s": round(time.perf_counter() - start, 1)}
            state["updated"] = provenance(seed)["created"]
            write_json_atomic(path, state)
    rankings = {}
    for steps in budgets:
        rows = [t for t in trials.values() if t["steps"] == int(steps) and t["sampler"] != "base"]
        rankings[str(steps)] = {m: [t["sampler"] for t in sorted(rows, key=lambda t: -t[f"{m}_mAP"])]
                                for m in ("mono", "cross", "multi")}
    state["rankings"] = rankings
    state["ranking_changes"] = {m: len({tuple(r[m]) for r in rankings.values()}) > 1
                                for m in ("mono", "cross", "multi")}
    write_json_atomic(path, state)
    return state


DEBIAS_GRID = {"center": [{}], "lir": [{"k": k} for k in (1, 2, 4, 8, 16)],
               "lsar": [{"r": r} for r in (1, 2, 4, 6)], "leace": [{}]}


def run_debias_sweep(out: Path, model: str = "me5-small", precision: str | None = None,
                     log: Callable[[str], None] = print) -> dict:
    """Choose K (LIR) and R (LSAR), and the best training-free method, on held-out MLQA-R groups.

    The methods are fitted on the MLQA-R training-side texts *without* the held-out groups (the lr sweep's 20 %,
    seed 0) and scored on those groups (mono / cross / multi mAP): never on XQuAD-R or MKQA. The criterion is
    multilingual mAP. Writes `<out>/sweep.json`, which model specs without K or R read.
    """
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.debias import MethodSpec, fit, training_side_texts
    from hybridviz.encoders.policy import default_precision
    from hybridviz.training.data import pairs_corpus

    precision = precision or default_precision(model)
    config = replace(TrainConfig(), holdout=HOLDOUT)
    corpus = pairs_corpus(validation_pairs(config))
    held = set(corpus.query_groups)
    encoder = load_encoder(model, precision=precision)
    Q = encoder.encode(corpus.query_texts, "query")
    C = encoder.encode(corpus.cand_texts, "passage")
    fit_texts = training_side_texts(held)
    kinds = np.asarray(fit_texts.kinds)
    X = np.zeros((len(kinds), Q.shape[1]), dtype=np.float32)
    for kind in ("query", "passage"):
        idx = np.flatnonzero(kinds == kind)
        X[idx] = encoder.encode([fit_texts.texts[i] for i in idx], kind)

    def scores(q, c) -> dict:
        return {f"{s}_mAP": evaluate_setting(corpus, s, q, c)[0]["macro"]["mAP"] for s in ("mono", "cross", "multi")}

    trials = {"none": {"method": "none", "params": {}, **scores(Q, C)}}
    for method, grid in DEBIAS_GRID.items():
        for params in grid:
            spec = MethodSpec(method, tuple(sorted(params.items())))
            start = time.perf_counter()
            d = fit(spec, X, fit_texts.langs, fit_texts.kinds, fit_texts.source)
            trials[spec.name] = {"method": method, "params": params,
                                 **scores(d.transform(Q, "query", corpus.query_langs),
                                          d.transform(C, "passage", corpus.cand_langs)),
                                 "fit_apply_s": round(time.perf_counter() - start, 2)}
            log(f"debias sweep: {spec.name}: multi mAP {trials[spec.name]['multi_mAP']:.4f}, "
                f"mono {trials[spec.name]['mono_mAP']:.4f}")
    chosen = {}
    for method in DEBIAS_GRID:
        best = max((t for t in trials.values() if t["method"] == method), key=lambda t: t["multi_mAP"])
        chosen[method] = best["params"]
    best_name = max((k for k in trials if k != "none"), key=lambda k: trials[k]["multi_mAP"])
    state = {"provenance": provenance(None), "model": model, "precision": precision,
             "model_fingerprint": encoder.fingerprint,
             "selection": f"fit on MLQA-R training-side texts without the {len(held)} held-out question groups "
                          f"({HOLDOUT:.0%}, seed {config.holdout_seed}); scored on those groups "
                          f"({len(corpus.query_ids)} questions, {len(corpus.cand_ids)} answers); criterion: "
                          "multilingual mAP",
             "fit_source": fit_texts.source, "trials": trials, "chosen": chosen,
             "best_method": trials[best_name]["method"], "best_spec": best_name}
    write_json_atomic(Path(out) / "sweep.json", state)
    return state
