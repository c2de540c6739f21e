"""Command line: `python -m hybridviz <command> ...` (`--help` lists them: evaluate, fetch, data, train, sweep,
budget, experiment, merge-bundles, summarise, robustness, debias-sweep, ship, lab-run).

Errors a user can fix (unknown task or language, missing or malformed data, unavailable model, corrupt files)
are printed as one sentence on stderr with exit status 2 — no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from hybridviz.data.paths import REFERENCE_DIR
from hybridviz.errors import HybridvizError
from hybridviz.experiments.reports import (headline_markdown, pair_markdown, robustness_markdown,
                                          training_free_markdown)
from hybridviz.results.report import markdown_table as _markdown_table, mkqa_nq_table, summary_table


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def cmd_evaluate(args) -> int:
    from hybridviz.tasks import check_task, task_dir

    check_task(args.task)  # a custom set (beir:<folder>) is validated whole before the model loads
    from hybridviz.evaluate import evaluate

    if args.out is None:
        from hybridviz.data.paths import EVALUATIONS_DIR

        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in args.model)
        args.out = str(EVALUATIONS_DIR / f"{safe}-{task_dir(args.task)}")
    start = time.perf_counter()
    report = evaluate(args.model, args.task, languages=_split(args.languages), settings=_split(args.settings),
                      out_dir=args.out, limit=args.limit, seed=args.seed, batch_size=args.batch_size,
                      precision=args.precision, log=lambda m: print(m, file=sys.stderr, flush=True))
    wall = time.perf_counter() - start
    print(summary_table(report))
    print(f"\nwrote {args.out}/metrics.json and per_query.jsonl in {wall:.1f} s")
    return 0


def cmd_fetch(args) -> int:
    from hybridviz.data.fetch import fetch

    for path in fetch(args.dataset):
        print(f"ok {path}")
    return 0


def cmd_data(args) -> int:
    """Which data files are found, and the counts per language of every benchmark."""
    from hybridviz.data.paths import data_dirs
    from hybridviz.status import data_status

    print("data directories (in order):", ", ".join(str(d) for d in data_dirs()))
    print(json.dumps(data_status(), indent=1, ensure_ascii=False))
    return 0


def cmd_train(args) -> int:
    from hybridviz.training.trainer import TrainConfig, train

    config = TrainConfig(model=args.model, sampler=args.sampler, alpha=args.alpha, steps=args.steps,
                         batch_size=args.batch_size, learning_rate=args.lr, warmup_steps=args.warmup,
                         temperature=args.temperature, symmetric=args.symmetric,
                         max_seq_length=args.max_length, freeze_word_embeddings=not args.train_word_embeddings,
                         train_languages=_split(args.languages), language_weighting=args.language_weighting,
                         seed=args.seed, save_steps=args.save_steps, train_data=args.data,
                         extra={} if args.source_temperature is None else
                         {"source_temperature": args.source_temperature})
    if args.mixed_precision:
        config.mixed_precision = args.mixed_precision

    def progress(step, total, eta):
        print(f"step {step}/{total}  eta {eta:.0f} s", file=sys.stderr, flush=True)

    run = train(config, on_progress=progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        print(f"run {run.id}: {run.status().get('state')} -> {run.dir}")
    return 0


def _set_up_arguments(parser) -> None:
    """The set-up a held-out sweep trains: encoder, batch size, training data, training precision."""
    parser.add_argument("--model", default="me5-small")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--data", default="mlqa-r", help="training data (held-out groups are taken from it)")
    parser.add_argument("--mixed-precision", choices=["fp32", "bf16"],
                        help="training precision (default: bf16 where the CPU has it, else fp32)")
    parser.add_argument("--languages", help="training languages (default: all of the training data)")


def _set_up(args) -> dict:
    return {"model": args.model, "train_data": args.data, "train_languages": _split(args.languages),
            **({"batch_size": args.batch_size} if args.batch_size else {}),
            **({"mixed_precision": args.mixed_precision} if args.mixed_precision else {})}


def cmd_sweep(args) -> int:
    from hybridviz.experiments.sweep import run_sweep
    from hybridviz.training.trainer import TrainConfig

    base = TrainConfig(steps=args.steps, sampler=args.sampler, seed=args.seed, **_set_up(args))
    base.validate()
    rates = {"learning_rates": [float(x) for x in _split(args.learning_rates)]} if args.learning_rates else {}
    state = run_sweep(Path(args.out), base, log=lambda m: print(m, file=sys.stderr, flush=True), **rates)
    for key, t in state["trials"].items():
        print(f"{key:<40} lr {t['learning_rate']}  warm-up {t['warmup_steps']}  "
              f"mono {t['mono_mAP']:.4f}  cross {t['cross_mAP']:.4f}  multi {t['multi_mAP']:.4f}")
    print(f"chosen: {state['chosen']}")
    return 0


def cmd_budget(args) -> int:
    from hybridviz.experiments.sweep import run_budget_check
    from hybridviz.training.trainer import TrainConfig

    base = TrainConfig(**_set_up(args), **({"learning_rate": args.lr} if args.lr is not None else {}),
                       **({"warmup_steps": args.warmup} if args.warmup is not None else {}))
    base.validate()
    samplers = _split(args.samplers) or ["x-x-mono", "x-y", "hybrid"]
    for sampler in samplers:
        replace(base, sampler=sampler).validate()
    state = run_budget_check(Path(args.out), budgets=[int(x) for x in _split(args.budgets)], seed=args.seed,
                             samplers=samplers, base=base, log=lambda m: print(m, file=sys.stderr, flush=True))
    for steps, ranking in state["rankings"].items():
        print(f"{steps:>5} steps: " + "  ".join(f"{m}: {' > '.join(r)}" for m, r in ranking.items()))
    print(f"ranking changes: {state['ranking_changes']}")
    return 0


def cmd_curves(args) -> int:
    from hybridviz.experiments.curves import converged_config, run_curves
    from hybridviz.training.trainer import TrainConfig

    base = TrainConfig(**_set_up(args), **({"learning_rate": args.lr} if args.lr is not None else {}))
    samplers = _split(args.samplers) or ["x-x-mono", "x-y", "hybrid"]
    probes = [int(x) for x in _split(args.probe_steps)] if args.probe_steps else []
    for sampler in samplers:  # every setting checked before the first step
        converged_config(replace(base, sampler=sampler), args.max_steps, args.eval_steps, args.patience, probes,
                         args.warmup).validate()
    state = run_curves(Path(args.out), base, samplers=samplers, seeds=[int(x) for x in _split(args.seeds)],
                       max_steps=args.max_steps, eval_steps=args.eval_steps, patience=args.patience,
                       probe_steps=probes, warmup_steps=args.warmup, record_only=args.record_only,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    for label, r in state["runs"].items():
        best = next((v for v in r["validation"] if v["step"] == r["best_step"]), {})
        if r["state"] != "done":
            last = r["validation"][-1] if r["validation"] else {}
            print(f"{label:<14} {r['state']}: validated up to step {last.get('step')}  " +
                  "  ".join(f"{k} {last.get(k, float('nan')):.4f}" for k in ("mono_mAP", "cross_mAP", "multi_mAP")))
            continue
        print(f"{label:<14} best step {r['best_step']} of {r['stopped_at']}  " +
              "  ".join(f"{k} {best.get(k, float('nan')):.4f}" for k in ("mono_mAP", "cross_mAP", "multi_mAP")))
    return 0


def cmd_experiment(args) -> int:
    from hybridviz.encoders.registry import bf16_is_fast, evaluation_precision
    from hybridviz.experiments.grid import GridSpec, inherited_settings, plan, run_grid, with_overrides

    lr, warmup = args.lr, args.warmup
    # each encoder's own held-out sweep (`sweep --model muse --out cache/reference/lr-sweep-muse`)
    sweep = REFERENCE_DIR / ("lr-sweep" if args.model == "me5-small" else f"lr-sweep-{args.model}") / "sweep.json"
    chosen = json.loads(sweep.read_text()).get("chosen", {}) if sweep.exists() else {}
    if (lr is None or warmup is None) and chosen:
        lr = lr if lr is not None else chosen.get("learning_rate")
        warmup = warmup if warmup is not None else chosen.get("warmup_steps")
        print(f"learning rate {lr:g}, warm-up {warmup} steps (from {sweep})", file=sys.stderr)
    elif lr is None or warmup is None:
        print(f"no finished learning-rate sweep for {args.model} ({sweep}): TrainConfig's lr and warm-up",
              file=sys.stderr)
    # continuing a bundle keeps its precisions; a new one takes the CPU's defaults (mUSE computes in fp32)
    inherited = inherited_settings(Path(args.out)) or {"precision": evaluation_precision(args.model),
                                                        "train_precision": evaluation_precision(args.model)}
    methods = None if args.methods is None else [m for m in _split(args.methods) or [] if m != "none"]
    spec = with_overrides(GridSpec(**inherited), model=args.model, samplers=_split(args.samplers),
                          seeds=[int(x) for x in _split(args.seeds)] if args.seeds else None,
                          alphas=[float(x) for x in _split(args.alphas)] if args.alphas else None,
                          steps=args.steps, learning_rate=lr, warmup_steps=warmup, batch_size=args.batch_size,
                          precision=args.precision, train_precision=args.train_precision,
                          train_data=args.train_data, methods=methods, train_languages=_split(args.train_languages))
    if args.sampler_method is not None:
        spec.sampler_method = None if args.sampler_method == "none" else args.sampler_method
    from hybridviz.experiments.custom_tasks import with_custom_tasks

    spec = with_custom_tasks(spec, _split(args.tasks), Path(args.out))  # beir:<folder> sets, validated now
    if args.early_stopping:  # the converged regime: --steps is the maximum budget
        from hybridviz.experiments.curves import HOLDOUT, WARMUP_STEPS, converged_extra

        spec.holdout = HOLDOUT
        spec.train_extra = converged_extra(args.eval_steps, args.patience,
                                           [int(x) for x in _split(args.probe_steps) or []])
        if args.warmup is None:
            spec.warmup_steps = WARMUP_STEPS
    if "bf16" in (spec.precision, spec.train_precision) and not bf16_is_fast():
        print("warning: this grid computes in bf16, which this CPU lacks natively (no AVX512-BF16 or AMX): "
              "encoding and training run several times slower than fp32 here, and bf16 sums may differ in their "
              "last bits from those of the machine that wrote the bundle.", file=sys.stderr)
    for sampler in spec.samplers:
        spec.train_config(sampler, spec.seeds[0]).validate()
    if args.plan:
        for unit in plan(spec):
            print(f"{unit.label:<22} {unit.config.run_id() if unit.config else spec.model:<40} "
                  f"{', '.join(unit.tasks)}")
        return 0
    analysis_plan = None
    if args.plan_file:  # stored in manifest.json before the first unit; another plan there is refused
        from hybridviz.experiments.plan import plan_mismatches, read_plan_file

        plan_, commit = read_plan_file(args.plan_file)
        mismatches = plan_mismatches(plan_, spec)
        if mismatches:
            print(f"error: {args.plan_file} does not describe this grid: " + "; ".join(mismatches), file=sys.stderr)
            return 2
        if commit is None:
            print(f"warning: {args.plan_file} is not committed as it is: the bundle cannot show that its plan "
                  "preceded the runs", file=sys.stderr)
        analysis_plan = {"plan": plan_.to_dict(), "commit": commit, "file": args.plan_file}
    run_grid(Path(args.out), spec, log=lambda m: print(m, file=sys.stderr, flush=True), only=_split(args.only),
             refresh=args.refresh, tasks=_split(args.tasks), replace_retrained=args.replace_retrained,
             summarise=not args.no_summary, analysis_plan=analysis_plan)
    print(f"bundle: {args.out} (manifest.json" + (")" if args.no_summary else ", summary.json, summary.csv)"))
    return 0


def cmd_merge_bundles(args) -> int:
    from hybridviz.experiments.grid import merge_bundle

    for src in args.sources:
        merged = merge_bundle(Path(src), Path(args.into))
        print(f"{src}: {', '.join(merged) or 'no finished unit'} -> {args.into}")
    print(f"now: python -m hybridviz summarise {args.into}")
    return 0


def cmd_compact_results(args) -> int:
    from hybridviz.results import LAYOUTS, compact_folder

    converted = 0
    for root in args.paths:
        for metrics in sorted(Path(root).rglob("metrics.json")):
            converted += compact_folder(metrics.parent, Path(root) / LAYOUTS)
    print(f"{converted} evaluation folders converted to the compact encoding (per_query.npz, layouts/)")
    return 0


def cmd_summarise(args) -> int:
    from hybridviz.experiments.bundle import write_summary

    if args.read:
        summary = json.loads((Path(args.bundle) / "summary.json").read_text())
        print(f"{len(summary['cells'])} cells, {len(summary['tests'])} run-level comparisons (read from "
              f"{args.bundle}/summary.json, not recomputed)")
    else:
        summary = write_summary(Path(args.bundle))
        print(f"{len(summary['cells'])} cells, {len(summary['tests'])} run-level comparisons -> "
              f"{args.bundle}/summary.json")
    if args.markdown:
        print(headline_markdown(summary))
    if args.training_free:
        print(training_free_markdown(summary))
    if args.against:
        from hybridviz.experiments.verdict import star_survival

        old = json.loads(Path(args.against).read_text())
        for task, entry in sorted(star_survival(old, summary).items()):
            if entry["old_stars"]:
                print(f"{task}: {entry['kept']} of {entry['old_stars']} query-level stars hold at the run level")
            for lost in entry["lost"]:
                print(f"  lost: {lost}")
            if entry["not_comparable"]:
                print(f"{task}: {len(entry['not_comparable'])} {'more ' if entry['old_stars'] else ''}query-level "
                      "stars are on cells this bundle no longer has (an earlier protocol): not comparable")
    return 0


def cmd_robustness(args) -> int:
    from hybridviz.experiments.bundle import find_bundles, load_bundle

    bundles = [load_bundle(Path(b)) for b in args.bundles or find_bundles()]
    if args.pair:
        pair = _split(args.pair) or []
        if len(pair) != 2:
            raise HybridvizError(f"--pair takes two groups, a,b (e.g. x-x-mono,hybrid), not {args.pair!r}")
        text = pair_markdown(bundles, *pair, args.metric)
        print(text or f"No set-up has a run-level comparison of {pair[0]} and {pair[1]} on {args.metric}.")
        return 0 if text else 1
    text = robustness_markdown(bundles)
    print(text or "No bundle with a run-level sampler verdict.")
    return 0 if text else 1


def cmd_debias_sweep(args) -> int:
    from hybridviz.experiments.sweep import run_debias_sweep

    state = run_debias_sweep(Path(args.out), model=args.model, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"chosen: {json.dumps(state['chosen'])}; best method on held-out MLQA-R: {state['best_spec']} "
          f"-> {args.out}/sweep.json")
    return 0


def cmd_transductive_spread(args) -> int:
    from hybridviz.encoders.registry import evaluation_precision
    from hybridviz.experiments.transductive import index_fit_spread

    out = index_fit_spread(args.model, args.task, args.method, [int(s) for s in _split(args.sample_seeds)],
                           languages=_split(args.languages), limit=args.limit,
                           precision=args.precision or evaluation_precision(args.model),
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.out:
        from hybridviz.fileio import write_json_atomic

        write_json_atomic(Path(args.out), out)
    print(f"{args.model}+{args.method} on {args.task}: {len(out['per_seed'])} question samples (seeds "
          f"{', '.join(map(str, out['sample_seeds']))})")
    for name, s in out["spread"].items():
        print(f"{name:<26} mean {s['mean']:.4f}  std over samples {s['std']:.4f}  (n={s['n']})")
    return 0


def cmd_ship(args) -> int:
    from hybridviz.experiments.ship import DEFAULT_ENCODING, ship

    for r in ship(Path(args.bundle), _split(args.units), args.encoding or DEFAULT_ENCODING):
        print(f"{r['unit']}: {r['mb']} MB ({r['encoding']}), cosine to the full model min "
              f"{r['cosine_to_full']['min']:.5f} mean {r['cosine_to_full']['mean']:.6f} over "
              f"{r['cosine_to_full']['texts']} texts")
    return 0


def cmd_mkqa_nq(args) -> int:
    from hybridviz.data.nq import corpus_path
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.registry import evaluation_precision
    from hybridviz.mkqa_nq import encode_corpus, evaluate_mkqa_nq

    if args.encode_only:
        encoder = load_encoder(args.model, use_cache=False, precision=evaluation_precision(args.model))
        folder, n, seconds = encode_corpus(encoder, corpus_path(args.corpus), args.limit_passages)
        print(f"{n:,} passages encoded in {seconds:.0f} s -> {folder}")
        return 0
    langs = args.languages.split(",") if args.languages else None
    report = evaluate_mkqa_nq(args.model, args.corpus, langs, args.index, args.limit_passages, args.limit_queries,
                              args.out)
    print(mkqa_nq_table(report))
    cost = report["cost"]["encode_s_per_1000_passages"]
    if cost:
        print(f"encoding: {cost:.1f} s per 1,000 passages on this machine")
    return 0


def cmd_export_mteb(args) -> int:
    from hybridviz.mteb_export import export
    from hybridviz.paper import mteb_mkqa_beside
    from hybridviz.results import read_metrics

    folder = Path(args.folder)
    print(f"-> {export(folder, Path(args.out) if args.out else None)}")
    beside = mteb_mkqa_beside(read_metrics(folder))
    print(_markdown_table(beside))
    reported = next(c for c in beside.columns if c.startswith("reported nDCG@10"))
    both = beside.dropna(subset=[reported])
    print(f"mean nDCG@10 over the {len(both)} languages both sides have: ours "
          f"{both['ours nDCG@10'].mean():.4f}, reported {both[reported].mean():.4f}")
    return 0


def cmd_lab_run(args) -> int:
    from hybridviz.experiments.lab import run_worker

    return run_worker(args.run_id, Path(args.root) if args.root else None)


def build_parser() -> argparse.ArgumentParser:
    from hybridviz.training.trainer import TrainConfig

    p = argparse.ArgumentParser(prog="python -m hybridviz", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("evaluate", help="evaluate an encoder on a task (metrics.json + per_query.jsonl)")
    e.add_argument("--model", default="me5-small", help="me5-small | hf:<name> | run:<id> | tiny | <folder>")
    e.add_argument("--task", required=True, help="xquad-r | mlqa-r | mkqa-queries | mkqa-answers | mkqa-mteb | "
                   "beir:<folder> (your own set: corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    e.add_argument("--languages", help="comma-separated language codes (default: all the data fully covers)")
    e.add_argument("--settings", help="comma-separated subset of mono,cross,multi (default: all)")
    e.add_argument("--out", help="output directory (default: cache/evaluations/<model>-<task>, which the app lists)")
    e.add_argument("--limit", type=int, help="evaluate a seeded sample of this many parallel groups")
    e.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    e.add_argument("--batch-size", type=int, help="texts per forward pass (default: the encoders' ENCODE_BATCH, 16)")
    e.add_argument("--precision", default="fp32", help="fp32 (exact) | bf16 (faster where the CPU has bf16) | int8 (ONNX Runtime, fastest on CPU; cosine ≥ 0.99 to fp32)")
    e.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("fetch", help="download XQuAD-R or MKQA into cache/data (needs internet)")
    f.add_argument("dataset", help="xquad-r | mkqa")
    f.set_defaults(func=cmd_fetch)

    t = sub.add_parser("train", help="fine-tune with a batch sampler (one run in cache/runs/<id>/)")
    d0 = TrainConfig()  # the training defaults have one home: TrainConfig (the grid's spec reads them too)
    t.add_argument("--model", default=d0.model)
    t.add_argument("--sampler", default=d0.sampler, help="x-x-mono | x-y | hybrid")
    t.add_argument("--alpha", type=float, default=d0.alpha, help="hybrid: probability of an x-x-mono batch")
    t.add_argument("--steps", type=int, default=d0.steps)
    t.add_argument("--batch-size", type=int, default=d0.batch_size)
    t.add_argument("--lr", type=float, default=d0.learning_rate, help="default: the lr/warm-up sweep's choice")
    t.add_argument("--warmup", type=int, default=d0.warmup_steps, help="warm-up steps (default: the sweep's choice)")
    t.add_argument("--temperature", type=float, default=d0.temperature)
    t.add_argument("--symmetric", action="store_true", help="also rank queries for each passage")
    t.add_argument("--max-length", type=int, default=d0.max_seq_length)
    t.add_argument("--train-word-embeddings", action="store_true", help="do not freeze the word embeddings")
    t.add_argument("--languages", help="training languages (default: all of the training data)")
    t.add_argument("--language-weighting", default=d0.language_weighting,
                   help="uniform | proportional | <temperature>")
    t.add_argument("--seed", type=int, default=d0.seed)
    t.add_argument("--save-steps", type=int, default=d0.save_steps)
    t.add_argument("--mixed-precision", choices=["fp32", "bf16"],
                   help="training precision (default: bf16 where the CPU has it, else fp32)")
    t.add_argument("--data", default="mlqa-r", help="mlqa-r, a train-extra source (mintaka, bipar, xlinghealth, "
                   "xor-tydi) or a JSONL file of {id, lang, query, positive}; a mix joins sources with '+', "
                   "e.g. mlqa-r+mintaka+bipar+xlinghealth+xor-tydi")
    t.add_argument("--source-temperature", type=float, default=None,
                   help="a mix draws each batch's source with probability proportional to its pairs^t "
                        "(1: by size, the paper's choice and the default; 0: uniform)")
    t.set_defaults(func=cmd_train)

    w = sub.add_parser("sweep", help="learning-rate / warm-up sweep on held-out MLQA-R groups")
    w.add_argument("--out", default=str(REFERENCE_DIR / "lr-sweep"))
    w.add_argument("--steps", type=int, default=100)
    w.add_argument("--sampler", default="hybrid")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--learning-rates", help="stage 1's learning rates (default: 1e-5,3e-5,1e-4)")
    _set_up_arguments(w)
    w.set_defaults(func=cmd_sweep)

    b = sub.add_parser("budget", help="does the sampler ranking change with the step budget? (held-out MLQA-R)")
    b.add_argument("--out", default="cache/reference/step-budget")
    b.add_argument("--budgets", default="100,300")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--samplers", default="x-x-mono,x-y,hybrid",
                   help="samplers trained at each budget (one alone gives its learning curve, not a ranking)")
    b.add_argument("--lr", type=float, help="learning rate (default: TrainConfig's, the mE5 sweep's choice)")
    b.add_argument("--warmup", type=int, help="warm-up steps (default: TrainConfig's)")
    _set_up_arguments(b)
    b.set_defaults(func=cmd_budget)

    c = sub.add_parser("curves", help="learning curves: samplers x seeds to a maximum budget, validated on "
                                      "held-out paragraphs along the way (the converged regime)")
    c.add_argument("--out", default="cache/partial/curves-me5-mlqa-r")
    c.add_argument("--samplers", default="x-x-mono,x-y,hybrid")
    c.add_argument("--seeds", default="0,1,2")
    c.add_argument("--max-steps", type=int, default=1500)
    c.add_argument("--eval-steps", type=int, default=100, help="validate every this many steps")
    c.add_argument("--patience", type=int, default=0, help="stop after this many validations without a gain "
                                                           "(0: train to --max-steps)")
    c.add_argument("--probe-steps", default="100,300,1000", help="steps at which an XQuAD-R sample is scored")
    c.add_argument("--warmup", type=int, default=100, help="warm-up steps (then a constant learning rate)")
    c.add_argument("--lr", type=float, help="learning rate (default: TrainConfig's)")
    c.add_argument("--record-only", action="store_true",
                   help="train nothing: record the runs' curves as they stand (a run still training included)")
    _set_up_arguments(c)
    c.set_defaults(func=cmd_curves)

    x = sub.add_parser("experiment", help="the sampler grid: base + fine-tunes x seeds, alpha sweep, evaluations")
    x.add_argument("--out", default="cache/reference/sampler-grid", help="result bundle folder")
    x.add_argument("--model", default="me5-small")
    x.add_argument("--samplers", help="comma-separated (default: x-x-mono,x-y,hybrid)")
    x.add_argument("--seeds", help="comma-separated (default: 0,1,2,3,4)")
    x.add_argument("--alphas", help="alpha sweep points (default: 0,0.25,0.5,0.75,1)")
    x.add_argument("--steps", type=int)
    x.add_argument("--lr", type=float, help="default: the choice of `python -m hybridviz sweep` if it ran")
    x.add_argument("--warmup", type=int, help="warm-up steps (default: the sweep's choice)")
    x.add_argument("--batch-size", type=int)
    x.add_argument("--precision", help="evaluation precision: fp32 | bf16 | int8 (default: the bundle's when it "
                   "exists, else bf16 where the CPU has it)")
    x.add_argument("--train-precision", choices=["fp32", "bf16"],
                   help="training precision (default: the bundle's when it exists, else bf16 where the CPU has it)")
    x.add_argument("--train-data", help="training data: mlqa-r (default), a train-extra source (mintaka, bipar, "
                   "xlinghealth, xor-tydi) or a mix such as mlqa-r+mintaka+bipar+xlinghealth+xor-tydi")
    x.add_argument("--train-languages", help="training languages (default: all of the training data)")
    x.add_argument("--methods", help="training-free methods applied to the base (comma-separated; 'none' for none; "
                   "default: center,lir,lsar,leace,center@index)")
    x.add_argument("--sampler-method", help="method applied to every sampler model ('best': the debias sweep's "
                   "winner (default); 'none')")
    x.add_argument("--only", help="comma-separated unit labels to run (e.g. base,hybrid-s0)")
    x.add_argument("--tasks", help="evaluate only these benchmarks now (comma-separated; the rest stay pending); "
                   "beir:<folder> adds your own evaluation set to the grid")
    x.add_argument("--refresh", action="store_true",
                   help="also re-evaluate results whose provenance is incomplete (retraining if weights are gone; "
                        "the retrained fingerprint must match)")
    x.add_argument("--replace-retrained", action="store_true",
                   help="where a unit's weights are gone and retraining gives other weights than the checkpoint "
                        "the bundle evaluated (another kind of CPU), evaluate the retrained model anew on every task "
                        "and replace the unit whole once complete (its +method units follow)")
    x.add_argument("--early-stopping", action="store_true",
                   help="the converged regime: train up to --steps, validate on held-out paragraphs every "
                        "--eval-steps, keep the best checkpoint, stop after --patience validations without a gain")
    x.add_argument("--eval-steps", type=int, default=100)
    x.add_argument("--patience", type=int, default=5)
    x.add_argument("--probe-steps", help="steps at which an XQuAD-R sample is scored along each run (reported only)")
    x.add_argument("--plan", action="store_true", help="print the units and exit")
    x.add_argument("--plan-file", help="an analysis plan (JSON, experiments/plan.py), stored in manifest.json with "
                   "the commit that holds it before the first unit runs; refused where the bundle holds another")
    x.add_argument("--no-summary", action="store_true",
                   help="write no summary.json (units run in parallel into folders of their own: merge-bundles)")
    x.set_defaults(func=cmd_experiment)

    mb = sub.add_parser("merge-bundles", help="copy the finished units of bundles of one grid (e.g. run in "
                        "parallel with --only U --no-summary) into one bundle")
    mb.add_argument("sources", nargs="+", help="bundle folders to merge from")
    mb.add_argument("--into", required=True, help="the bundle to merge into (created when absent)")
    mb.set_defaults(func=cmd_merge_bundles)

    cr = sub.add_parser("compact-results", help="convert a bundle's per-query files (gzipped text or compact format "
                        "1) to the compact encoding: per_query.npz per model, shared layouts in <bundle>/layouts, "
                        "metrics.json without indentation (checked to read back the same before anything is "
                        "replaced)")
    cr.add_argument("paths", nargs="+", help="result bundles")
    cr.set_defaults(func=cmd_compact_results)

    m = sub.add_parser("summarise", help="recompute a bundle's summary.json (mean +/- std, paired tests)")
    m.add_argument("bundle")
    m.add_argument("--markdown", action="store_true", help="also print the headline tables (ours and reported)")
    m.add_argument("--against", help="an older summary.json: how many of its query-level stars hold now")
    m.add_argument("--read", action="store_true", help="read the bundle's summary.json instead of recomputing it")
    m.add_argument("--training-free", action="store_true",
                   help="also print the training-free methods against the samplers, the samplers + method against "
                        "the samplers alone, and the monolingual cost against the base")
    m.set_defaults(func=cmd_summarise)

    lr_ = sub.add_parser("lab-run", help="(internal) the fine-tune lab's background worker for one run")
    lr_.add_argument("run_id")
    lr_.add_argument("--root")
    lr_.set_defaults(func=cmd_lab_run)

    ds = sub.add_parser("debias-sweep", help="choose K / R and the best training-free debiasing method on "
                                             "held-out MLQA-R groups")
    ds.add_argument("--out", default=str(REFERENCE_DIR / "debias-sweep"))
    ds.add_argument("--model", default="me5-small")
    ds.set_defaults(func=cmd_debias_sweep)

    ts = sub.add_parser("transductive-spread", help="refit an index-time (transductive) method with other samples "
                        "of test questions and report the spread of its figures (experiments/transductive.py)")
    ts.add_argument("--model", default="me5-small")
    ts.add_argument("--task", default="xquad-r")
    ts.add_argument("--method", default="center@index")
    ts.add_argument("--sample-seeds", default="0,1,2,3,4")
    ts.add_argument("--languages")
    ts.add_argument("--limit", type=int)
    ts.add_argument("--precision", help="default: the model's evaluation precision on this CPU")
    ts.add_argument("--out", help="write the per-seed figures and the spread as JSON")
    ts.set_defaults(func=cmd_transductive_spread)

    sp = sub.add_parser("ship", help="write compact models (deltas from the base) of fine-tuned units into a bundle")
    sp.add_argument("bundle")
    sp.add_argument("--units", required=True, help="comma-separated unit labels, e.g. x-x-mono-s0,x-y-s0,hybrid-s0")
    sp.add_argument("--encoding", help="lowrank:r=<rank> | int4 | int8 (default lowrank:r=48)")
    sp.set_defaults(func=cmd_ship)

    rb = sub.add_parser("robustness", help="the Robustness page as markdown: each set-up's sampler verdict and "
                                           "where set-ups disagree")
    rb.add_argument("bundles", nargs="*", help="bundle folders (default: every bundle in cache/reference/)")
    rb.add_argument("--pair", help="a,b: instead, the page's forest plot as a table: Δ (b − a) per set-up, "
                                   "benchmark and setting, e.g. x-x-mono,hybrid")
    rb.add_argument("--metric", default="mAP", help="the metric of --pair (mAP, max_rank_distance, nDCG@10, ...)")
    rb.set_defaults(func=cmd_robustness)

    me = sub.add_parser("export-mteb", help="write an mkqa-mteb evaluation as MTEB's result JSON (MKQARetrieval.json)")
    me.add_argument("folder", help="an evaluation folder (metrics.json of task mkqa-mteb)")
    me.add_argument("--out", help="output file (default: <folder>/MKQARetrieval.json)")
    me.set_defaults(func=cmd_export_mteb)

    nq = sub.add_parser("mkqa-nq", help="BGE-M3's MKQA protocol: MKQA questions retrieve English NQ passages "
                                         "(needs a local BEIR NQ corpus)")
    nq.add_argument("--corpus", help="BEIR NQ folder or its corpus.jsonl (default: $HYBRIDVIZ_NQ_CORPUS)")
    nq.add_argument("--model", default="me5-small")
    nq.add_argument("--languages", help="comma-separated MKQA languages (default: all)")
    nq.add_argument("--index", default="exact", help="exact (faiss IndexFlatIP) | hnsw | ivf")
    nq.add_argument("--limit-passages", type=int, help="only the first N passages (a cost sample)")
    nq.add_argument("--limit-queries", type=int, help="only the first N questions per language")
    nq.add_argument("--encode-only", action="store_true",
                    help="encode this process's shards and stop (one torchrun rank of a sharded encode)")
    nq.add_argument("--out", help="folder for metrics.json")
    nq.set_defaults(func=cmd_mkqa_nq)

    d = sub.add_parser("data", help="show where data is found and the counts per language")
    d.set_defaults(func=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    try:
        return args.func(args)
    except HybridvizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
