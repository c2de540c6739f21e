"""The commands of `python -m hybridviz`: one function per command, `cmd_<name>(args) -> exit status`.

Every import of weight (torch, sentence-transformers, pandas, the library's numpy modules) sits inside the command
that needs it, so that `--help`, a mistyped flag, `data` and `summarise --read` start in well under a second.
Paths come from hybridviz/data/paths.py (CACHE_DIR honours HYBRIDVIZ_CACHE).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from hybridviz.data.paths import EVALUATIONS_DIR
from hybridviz.errors import HybridvizError


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_evaluate(args) -> int:
    from hybridviz.encoders.policy import default_precision
    from hybridviz.evaluate import evaluate
    from hybridviz.results.report import summary_table
    from hybridviz.tasks import check_task, task_dir

    check_task(args.task)  # a custom set (beir:<folder>) is validated whole before the model loads
    if args.out is None:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in args.model)
        args.out = str(EVALUATIONS_DIR / f"{safe}-{task_dir(args.task)}")
    start = time.perf_counter()
    report = evaluate(args.model, args.task, languages=_split(args.languages), settings=_split(args.settings),
                      out_dir=args.out, limit=args.limit, seed=args.seed, batch_size=args.batch_size,
                      precision=args.precision or default_precision(args.model), log=_log)
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
    from hybridviz.training.trainer import TrainConfig, pin_training_file, train

    # the training defaults have one home, TrainConfig (the grid's spec reads them too): the parser leaves what is
    # not given at None, and the config fills it in (mixed precision: the policy's default for the model)
    given = {"model": args.model, "sampler": args.sampler, "alpha": args.alpha, "steps": args.steps,
             "batch_size": args.batch_size, "learning_rate": args.lr, "warmup_steps": args.warmup,
             "temperature": args.temperature, "max_seq_length": args.max_length,
             "language_weighting": args.language_weighting, "seed": args.seed, "save_steps": args.save_steps,
             "mixed_precision": args.mixed_precision}
    config = TrainConfig(**{k: v for k, v in given.items() if v is not None}, symmetric=args.symmetric,
                         freeze_word_embeddings=not args.train_word_embeddings,
                         train_languages=_split(args.languages), train_data=args.data,
                         extra={} if args.source_temperature is None else
                         {"source_temperature": args.source_temperature})
    config = pin_training_file(config)  # a JSONL file: validated line by line, its sha256 in the run id

    def progress(step, total, eta):
        print(f"step {step}/{total}  eta {eta:.0f} s", file=sys.stderr, flush=True)

    run = train(config, on_progress=progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        print(f"run {run.id}: {run.status().get('state')} -> {run.dir}")
    return 0


def _set_up(args) -> dict:
    """The set-up a held-out sweep trains (parser.add_set_up_arguments)."""
    return {"model": args.model, "train_data": args.data, "train_languages": _split(args.languages),
            **({"batch_size": args.batch_size} if args.batch_size else {}),
            **({"mixed_precision": args.mixed_precision} if args.mixed_precision else {})}


def cmd_sweep(args) -> int:
    from hybridviz.experiments.sweep import run_sweep
    from hybridviz.training.trainer import TrainConfig, pin_training_file

    base = pin_training_file(TrainConfig(steps=args.steps, sampler=args.sampler, seed=args.seed, **_set_up(args)))
    base.validate()
    rates = {"learning_rates": [float(x) for x in _split(args.learning_rates)]} if args.learning_rates else {}
    state = run_sweep(Path(args.out), base, log=_log, **rates)
    for key, t in state["trials"].items():
        print(f"{key:<40} lr {t['learning_rate']}  warm-up {t['warmup_steps']}  "
              f"mono {t['mono_mAP']:.4f}  cross {t['cross_mAP']:.4f}  multi {t['multi_mAP']:.4f}")
    print(f"chosen: {state['chosen']}")
    return 0


def cmd_budget(args) -> int:
    from dataclasses import replace

    from hybridviz.experiments.sweep import run_budget_check
    from hybridviz.training.trainer import TrainConfig, pin_training_file

    base = TrainConfig(**_set_up(args), **({"learning_rate": args.lr} if args.lr is not None else {}),
                       **({"warmup_steps": args.warmup} if args.warmup is not None else {}))
    base = pin_training_file(base)  # a JSONL file: validated line by line, its sha256 in the run ids
    base.validate()
    samplers = _split(args.samplers) or ["x-x-mono", "x-y", "hybrid"]
    for sampler in samplers:
        replace(base, sampler=sampler).validate()
    state = run_budget_check(Path(args.out), budgets=[int(x) for x in _split(args.budgets)], seed=args.seed,
                             samplers=samplers, base=base, log=_log)
    for steps, ranking in state["rankings"].items():
        print(f"{steps:>5} steps: " + "  ".join(f"{m}: {' > '.join(r)}" for m, r in ranking.items()))
    print(f"ranking changes: {state['ranking_changes']}")
    return 0


def cmd_curves(args) -> int:
    from dataclasses import replace

    from hybridviz.experiments.curves import converged_config, run_curves
    from hybridviz.training.trainer import TrainConfig, pin_training_file

    base = TrainConfig(**_set_up(args), **({"learning_rate": args.lr} if args.lr is not None else {}))
    base = pin_training_file(base)  # a JSONL file: validated line by line, its sha256 in the run ids
    samplers = _split(args.samplers) or ["x-x-mono", "x-y", "hybrid"]
    probes = [int(x) for x in _split(args.probe_steps)] if args.probe_steps else []
    for sampler in samplers:  # every setting checked before the first step
        converged_config(replace(base, sampler=sampler), args.max_steps, args.eval_steps, args.patience, probes,
                         args.warmup).validate()
    state = run_curves(Path(args.out), base, samplers=samplers, seeds=[int(x) for x in _split(args.seeds)],
                       max_steps=args.max_steps, eval_steps=args.eval_steps, patience=args.patience,
                       probe_steps=probes, warmup_steps=args.warmup, record_only=args.record_only,
                       log=_log)
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
    from hybridviz.encoders.policy import bf16_slow_warning, default_precision, note_departure
    from hybridviz.experiments.grid import GridSpec, inherited_settings, plan, run_grid, with_overrides

    lr, warmup = args.lr, args.warmup
    from hybridviz.results.store import sweep_choice

    # each encoder's own held-out sweep (`sweep --model muse --out cache/reference/lr-sweep-muse`)
    chosen, sweep = sweep_choice(args.model)
    if (lr is None or warmup is None) and chosen:
        lr = lr if lr is not None else chosen.get("learning_rate")
        warmup = warmup if warmup is not None else chosen.get("warmup_steps")
        print(f"learning rate {lr:g}, warm-up {warmup} steps (from {sweep})", file=sys.stderr)
    elif lr is None or warmup is None:
        print(f"no finished learning-rate sweep for {args.model} ({sweep}): TrainConfig's lr and warm-up",
              file=sys.stderr)
    # continuing a bundle keeps its precisions; a new one takes the policy's default (mUSE computes in fp32)
    inherited = inherited_settings(Path(args.out)) or {"precision": default_precision(args.model),
                                                        "train_precision": default_precision(args.model)}
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
    from hybridviz.experiments.grid import pin_training_file

    spec = pin_training_file(spec)  # a JSONL file: validated line by line now, its sha256 in every run id
    if args.early_stopping:  # the converged regime: --steps is the maximum budget
        from hybridviz.experiments.curves import HOLDOUT, WARMUP_STEPS, converged_extra

        spec.holdout = HOLDOUT
        spec.train_extra = converged_extra(args.eval_steps, args.patience,
                                           [int(x) for x in _split(args.probe_steps) or []])
        if args.warmup is None:
            spec.warmup_steps = WARMUP_STEPS
    for what, used, given in (("evaluating", spec.precision, args.precision),
                              ("training", spec.train_precision, args.train_precision)):
        if given is None:  # the bundle's own precision where it departs from the default: said, not silent
            note_departure(what, used, spec.model, f"the precision {args.out} was started with")
    warning = bf16_slow_warning(spec.precision, spec.train_precision)
    if warning:
        print(warning, file=sys.stderr)
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
    from hybridviz.experiments.executors import make_executor

    if args.executor == "serial" and any(v is not None for v in (args.ray_address, args.ray_cpus_per_unit,
                                                                  args.ray_gpus_per_unit, args.max_retries)):
        raise HybridvizError("--ray-address, --ray-cpus-per-unit, --ray-gpus-per-unit and --max-retries go with "
                             "--executor ray.")
    executor = make_executor(args.executor, address=args.ray_address, cpus_per_unit=args.ray_cpus_per_unit,
                             gpus_per_unit=args.ray_gpus_per_unit, max_retries=args.max_retries,
                             ddp_procs=args.ddp_procs_per_unit)
    run_grid(Path(args.out), spec, log=_log, only=_split(args.only),
             refresh=args.refresh, tasks=_split(args.tasks), replace_retrained=args.replace_retrained,
             summarise=not args.no_summary, analysis_plan=analysis_plan, executor=executor)
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
    from hybridviz.results.format import LAYOUTS
    from hybridviz.results.store import compact_folder, evaluation_folders

    converted = 0
    for root in args.paths:
        for folder in evaluation_folders(Path(root)):
            converted += compact_folder(folder, Path(root) / LAYOUTS)
    print(f"{converted} evaluation folders converted to the compact encoding (per_query.npz, layouts/)")
    return 0


def cmd_summarise(args) -> int:
    if args.read:  # read only: nothing of the statistics is imported
        summary = json.loads((Path(args.bundle) / "summary.json").read_text())
        print(f"{len(summary['cells'])} cells, {len(summary['tests'])} run-level comparisons (read from "
              f"{args.bundle}/summary.json, not recomputed)")
    else:
        from hybridviz.experiments.bundle import write_summary

        summary = write_summary(Path(args.bundle))
        print(f"{len(summary['cells'])} cells, {len(summary['tests'])} run-level comparisons -> "
              f"{args.bundle}/summary.json")
    if args.markdown:
        from hybridviz.experiments.reports import headline_markdown

        print(headline_markdown(summary))
    if args.training_free:
        from hybridviz.experiments.reports import training_free_markdown

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
    from hybridviz.experiments.reports import pair_markdown, robustness_markdown
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


def cmd_answers(args) -> int:
    from hybridviz.experiments.answers import answers_markdown, counterparts
    from hybridviz.experiments.bundle import find_bundles, load_bundle
    from hybridviz.experiments.robustness import setup_from
    from hybridviz.results.store import read_manifest
    from hybridviz.viz.style import group_label

    chosen = [load_bundle(Path(b)) for b in args.bundles] if args.bundles else \
        [load_bundle(p) for p in find_bundles() if setup_from(p, read_manifest(p))["early_stopped"]]
    if not chosen:
        print("No converged (early-stopped) bundle yet: name one, e.g. "
              "python -m hybridviz answers cache/reference/converged-me5-mlqa-r")
        return 1
    texts = []
    for bundle in chosen:
        twins = [load_bundle(Path(t)) for t in (args.twins if args.twins is not None else
                                                counterparts(bundle, find_bundles()))]
        texts.append(answers_markdown(bundle, twins, labels=group_label)
                     or f"{bundle.path}: its summary predates the current statistics; run summarise first.")
    print("\n".join(texts))
    return 0


def cmd_debias_sweep(args) -> int:
    from hybridviz.experiments.sweep import run_debias_sweep

    state = run_debias_sweep(Path(args.out), model=args.model, log=_log)
    print(f"chosen: {json.dumps(state['chosen'])}; best method on held-out MLQA-R: {state['best_spec']} "
          f"-> {args.out}/sweep.json")
    return 0


def cmd_transductive_spread(args) -> int:
    from hybridviz.encoders.policy import default_precision
    from hybridviz.experiments.transductive import index_fit_spread

    out = index_fit_spread(args.model, args.task, args.method, [int(s) for s in _split(args.sample_seeds)],
                           languages=_split(args.languages), limit=args.limit,
                           precision=args.precision or default_precision(args.model),
                           log=_log)
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
    from hybridviz.encoders.policy import default_precision
    from hybridviz.mkqa_nq import encode_corpus, evaluate_mkqa_nq
    from hybridviz.results.report import mkqa_nq_table

    if args.encode_only:
        encoder = load_encoder(args.model, use_cache=False, precision=default_precision(args.model))
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
    from hybridviz.results.report import markdown_table as _markdown_table
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


def cmd_study_run(args) -> int:
    from hybridviz.experiments.study import run_worker

    return run_worker(args.name, Path(args.root) if args.root else None)
