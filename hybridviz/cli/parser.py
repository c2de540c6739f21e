"""The argument parser of `python -m hybridviz`: one small `add_<command>_parser(subparsers)` per command (in the
manner of mteb's mteb/cli/build_cli.py), with the options several commands share added by one function each.

Nothing here imports more than argparse, the paths module and the light encoder modules (policy, locators), so
that `--help` and an argument error answer at once. Defaults that live elsewhere (TrainConfig's) are left at None
here and filled in by the command.
"""

from __future__ import annotations

import argparse

from hybridviz.cli import commands as c
from hybridviz.data.paths import CACHE_DIR, EVALUATIONS_DIR, MAIN_BUNDLE, REFERENCE_DIR, RUNS_DIR
from hybridviz.encoders.locators import kinds_sentence
from hybridviz.encoders.policy import DEFAULT_HELP, PRECISIONS, TRAIN_PRECISIONS

DESCRIPTION = "hybridviz: hybrid batch training for multilingual dense retrieval, measured."
EPILOG = ("Errors a user can fix (unknown task or language, missing or malformed data, unavailable model, corrupt "
          "files) are printed as one sentence on stderr with exit status 2, without a traceback.")
TRAINING_DATA = ("mlqa-r, a train-extra source (mintaka, bipar, xlinghealth, xor-tydi), a mix joined with '+', "
                 "e.g. mlqa-r+mintaka+bipar+xlinghealth+xor-tydi, or your own file.jsonl of {id, lang, query, "
                 "positive} (rows sharing an id are parallel; validated line by line, run ids follow its sha256)")


def _rel(path) -> str:
    """A path as help texts show it: relative to the working folder where it lies below it."""
    try:
        return str(path.relative_to(path.cwd()))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------- shared arguments


def add_model_argument(parser, default: str | None = "me5-small") -> None:
    """--model: any kind of name the encoder registry knows (the list is generated from its locators)."""
    parser.add_argument("--model", default=default, help=f"{kinds_sentence()} (default: {default})")


def add_precision_argument(parser, what: str = "evaluation precision") -> None:
    parser.add_argument("--precision", choices=PRECISIONS, help=f"{what}: fp32 (exact) | bf16 (faster where the "
                        f"CPU has bf16) | int8 (ONNX Runtime, fastest on CPU; cosine >= 0.99 to fp32); {DEFAULT_HELP}")


def add_training_precision_argument(parser, flag: str = "--mixed-precision", extra: str = "") -> None:
    parser.add_argument(flag, choices=TRAIN_PRECISIONS, help=f"training precision ({extra}{DEFAULT_HELP})")


def add_set_up_arguments(parser) -> None:
    """The set-up a held-out sweep trains: encoder, batch size, training data, training precision, languages."""
    add_model_argument(parser)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--data", default="mlqa-r", help=f"training data (held-out groups are taken from it; a "
                        f"JSONL file's are whole ids): {TRAINING_DATA}")
    add_training_precision_argument(parser)
    parser.add_argument("--languages", help="training languages (default: all of the training data)")


def add_lr_warmup_arguments(parser, lr_default: str = "TrainConfig's", warmup_help: str | None = None,
                            warmup_default: int | None = None) -> None:
    parser.add_argument("--lr", type=float, help=f"learning rate (default: {lr_default})")
    parser.add_argument("--warmup", type=int, default=warmup_default,
                        help=warmup_help or "warm-up steps (default: TrainConfig's)")


def add_converged_arguments(parser, patience: int, probe_default: str | None) -> None:
    """The converged regime's validation schedule (curves, experiment --early-stopping)."""
    parser.add_argument("--eval-steps", type=int, default=100, help="validate every this many steps")
    parser.add_argument("--patience", type=int, default=patience,
                        help="stop after this many validations without a gain (0: train to the maximum)")
    parser.add_argument("--probe-steps", default=probe_default,
                        help="steps at which an XQuAD-R sample is scored along each run (reported only)")


def add_executor_arguments(parser) -> None:
    """Where a grid's units run (experiments/executors.py): in this process, or as tasks of a Ray cluster."""
    group = parser.add_argument_group("executor", "where the units run (docs/cluster.md)")
    group.add_argument("--executor", choices=("serial", "ray"), default="serial",
                       help="serial: one unit after another in this process (default); ray: each fine-tune (with "
                            "its evaluations and method units) a task of a Ray cluster (pip install -r "
                            "requirements-ray.txt)")
    group.add_argument("--ray-address", help="a running cluster: auto, or <host>:<port> of its head (default: "
                       "start a local cluster on this machine's cores and GPUs)")
    group.add_argument("--ray-cpus-per-unit", type=float, help="CPUs each unit's task declares and uses (default 2)")
    group.add_argument("--ray-gpus-per-unit", type=float,
                       help="GPUs each unit's task declares (default: 1 where the cluster has GPUs, else 0)")
    group.add_argument("--max-retries", type=int,
                       help="times a unit whose worker or node died is submitted again (default 2)")
    group.add_argument("--ddp-procs-per-unit", type=int, metavar="N",
                       help="train each unit's fine-tune as N DDP processes under torchrun, then evaluate it in the "
                            "unit's own process (default 1: no torchrun; N > 1 trains on N batches a step, so the "
                            "process count joins the run id; on the CPU the processes use gloo)")


# ------------------------------------------------------------------------------------------ the commands


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate an encoder on a task (metrics.json + per_query.jsonl)")
    add_model_argument(p)
    p.add_argument("--task", required=True, help="xquad-r | mlqa-r | mkqa-queries | mkqa-answers | mkqa-mteb | "
                   "beir:<folder> (your own set: corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    p.add_argument("--languages", help="comma-separated language codes (default: all the data fully covers)")
    p.add_argument("--settings", help="comma-separated subset of mono,cross,multi (default: all)")
    p.add_argument("--out", help=f"output directory (default: {_rel(EVALUATIONS_DIR)}/<model>-<task>, which the "
                   "app lists)")
    p.add_argument("--limit", type=int, help="evaluate a seeded sample of this many parallel groups")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    p.add_argument("--batch-size", type=int, help="texts per forward pass (default: the encoders' ENCODE_BATCH, 16)")
    add_precision_argument(p)
    p.set_defaults(func=c.cmd_evaluate)


def add_fetch_parser(sub) -> None:
    p = sub.add_parser("fetch", help=f"download XQuAD-R or MKQA into {_rel(CACHE_DIR / 'data')} (needs internet)")
    p.add_argument("dataset", help="xquad-r | mkqa")
    p.set_defaults(func=c.cmd_fetch)


def add_data_parser(sub) -> None:
    p = sub.add_parser("data", help="show where data is found and the counts per language")
    p.set_defaults(func=c.cmd_data)


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help=f"fine-tune with a batch sampler (one run in {_rel(RUNS_DIR)}/<id>/); "
                       "defaults: TrainConfig's (hybridviz/training/trainer.py)")
    add_model_argument(p)
    p.add_argument("--sampler", help="x-x-mono | x-y | hybrid (default: hybrid)")
    p.add_argument("--alpha", type=float, help="hybrid: probability of an x-x-mono batch (default: 0.5)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    add_lr_warmup_arguments(p, lr_default="the lr/warm-up sweep's choice",
                            warmup_help="warm-up steps (default: the sweep's choice)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--symmetric", action="store_true", help="also rank queries for each passage")
    p.add_argument("--max-length", type=int)
    p.add_argument("--train-word-embeddings", action="store_true", help="do not freeze the word embeddings")
    p.add_argument("--languages", help="training languages (default: all of the training data)")
    p.add_argument("--language-weighting", help="uniform | proportional | <temperature> (default: uniform)")
    p.add_argument("--seed", type=int)
    p.add_argument("--save-steps", type=int)
    add_training_precision_argument(p)
    p.add_argument("--data", default="mlqa-r", help=f"training data: {TRAINING_DATA}")
    p.add_argument("--source-temperature", type=float, default=None,
                   help="a mix draws each batch's source with probability proportional to its pairs^t "
                        "(1: by size, the paper's choice and the default; 0: uniform)")
    p.set_defaults(func=c.cmd_train)


def add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="learning-rate / warm-up sweep on held-out MLQA-R groups")
    p.add_argument("--out", default=str(REFERENCE_DIR / "lr-sweep"))
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--sampler", default="hybrid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rates", help="stage 1's learning rates (default: 1e-5,3e-5,1e-4)")
    add_set_up_arguments(p)
    p.set_defaults(func=c.cmd_sweep)


def add_budget_parser(sub) -> None:
    p = sub.add_parser("budget", help="does the sampler ranking change with the step budget? (held-out MLQA-R)")
    p.add_argument("--out", default=str(REFERENCE_DIR / "step-budget"))
    p.add_argument("--budgets", default="100,300")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samplers", default="x-x-mono,x-y,hybrid",
                   help="samplers trained at each budget (one alone gives its learning curve, not a ranking)")
    add_lr_warmup_arguments(p, lr_default="TrainConfig's, the mE5 sweep's choice")
    add_set_up_arguments(p)
    p.set_defaults(func=c.cmd_budget)


def add_curves_parser(sub) -> None:
    p = sub.add_parser("curves", help="learning curves: samplers x seeds to a maximum budget, validated on "
                                      "held-out paragraphs along the way (the converged regime)")
    p.add_argument("--out", default=str(CACHE_DIR / "partial" / "curves-me5-mlqa-r"))
    p.add_argument("--samplers", default="x-x-mono,x-y,hybrid")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--max-steps", type=int, default=1500)
    add_converged_arguments(p, patience=0, probe_default="100,300,1000")
    add_lr_warmup_arguments(p, warmup_help="warm-up steps (then a constant learning rate)", warmup_default=100)
    p.add_argument("--record-only", action="store_true",
                   help="train nothing: record the runs' curves as they stand (a run still training included)")
    add_set_up_arguments(p)
    p.set_defaults(func=c.cmd_curves)


def add_experiment_parser(sub) -> None:
    p = sub.add_parser("experiment", help="the sampler grid: base + fine-tunes x seeds, alpha sweep, evaluations")
    p.add_argument("--out", default=str(REFERENCE_DIR / MAIN_BUNDLE), help="result bundle folder")
    add_model_argument(p)
    p.add_argument("--samplers", help="comma-separated (default: x-x-mono,x-y,hybrid)")
    p.add_argument("--seeds", help="comma-separated (default: 0,1,2,3,4)")
    p.add_argument("--alphas", help="alpha sweep points (default: 0,0.25,0.5,0.75,1)")
    p.add_argument("--steps", type=int)
    add_lr_warmup_arguments(p, lr_default="the choice of `python -m hybridviz sweep` if it ran",
                            warmup_help="warm-up steps (default: the sweep's choice)")
    p.add_argument("--batch-size", type=int)
    add_precision_argument(p, "evaluation precision (the bundle's when it exists)")
    add_training_precision_argument(p, "--train-precision", extra="the bundle's when it exists; else the ")
    p.add_argument("--train-data", help=f"training data: {TRAINING_DATA} (default: mlqa-r)")
    p.add_argument("--train-languages", help="training languages (default: all of the training data)")
    p.add_argument("--methods", help="training-free methods applied to the base (comma-separated; 'none' for none; "
                   "default: center,lir,lsar,leace,center@index)")
    p.add_argument("--sampler-method", help="method applied to every sampler model ('best': the debias sweep's "
                   "winner (default); 'none')")
    p.add_argument("--only", help="comma-separated unit labels to run (e.g. base,hybrid-s0)")
    p.add_argument("--tasks", help="evaluate only these benchmarks now (comma-separated; the rest stay pending); "
                   "beir:<folder> adds your own evaluation set to the grid")
    p.add_argument("--refresh", action="store_true",
                   help="also re-evaluate results whose provenance is incomplete (retraining if weights are gone; "
                        "the retrained fingerprint must match)")
    p.add_argument("--replace-retrained", action="store_true",
                   help="where a unit's weights are gone and retraining gives other weights than the checkpoint "
                        "the bundle evaluated (another kind of CPU), evaluate the retrained model anew on every task "
                        "and replace the unit whole once complete (its +method units follow)")
    p.add_argument("--early-stopping", action="store_true",
                   help="the converged regime: train up to --steps, validate on held-out paragraphs (a JSONL "
                        "file: held-out ids) every --eval-steps, keep the best checkpoint, stop after --patience "
                        "validations without a gain")
    add_converged_arguments(p, patience=5, probe_default=None)
    p.add_argument("--plan", action="store_true", help="print the units and exit")
    p.add_argument("--plan-file", help="an analysis plan (JSON, experiments/plan.py), stored in manifest.json with "
                   "the commit that holds it before the first unit runs; refused where the bundle holds another")
    p.add_argument("--no-summary", action="store_true",
                   help="write no summary.json (units run in parallel into folders of their own: merge-bundles)")
    add_executor_arguments(p)
    p.set_defaults(func=c.cmd_experiment)


def add_merge_bundles_parser(sub) -> None:
    p = sub.add_parser("merge-bundles", help="copy the finished units of bundles of one grid (e.g. run in "
                       "parallel with --only U --no-summary) into one bundle")
    p.add_argument("sources", nargs="+", help="bundle folders to merge from")
    p.add_argument("--into", required=True, help="the bundle to merge into (created when absent)")
    p.set_defaults(func=c.cmd_merge_bundles)


def add_compact_results_parser(sub) -> None:
    p = sub.add_parser("compact-results", help="convert a bundle's per-query files (gzipped text or compact format "
                       "1) to the compact encoding: per_query.npz per model, shared layouts in <bundle>/layouts, "
                       "metrics.json without indentation (checked to read back the same before anything is "
                       "replaced)")
    p.add_argument("paths", nargs="+", help="result bundles")
    p.set_defaults(func=c.cmd_compact_results)


def add_summarise_parser(sub) -> None:
    p = sub.add_parser("summarise", help="recompute a bundle's summary.json (mean +/- std, paired tests)")
    p.add_argument("bundle")
    p.add_argument("--markdown", action="store_true", help="also print the headline tables (ours and reported)")
    p.add_argument("--against", help="an older summary.json: how many of its query-level stars hold now")
    p.add_argument("--read", action="store_true", help="read the bundle's summary.json instead of recomputing it")
    p.add_argument("--training-free", action="store_true",
                   help="also print the training-free methods against the samplers, the samplers + method against "
                        "the samplers alone, and the monolingual cost against the base")
    p.set_defaults(func=c.cmd_summarise)


def add_lab_run_parser(sub) -> None:
    p = sub.add_parser("lab-run", help="(internal) the fine-tune lab's background worker for one run")
    p.add_argument("run_id")
    p.add_argument("--root")
    p.set_defaults(func=c.cmd_lab_run)


def add_study_run_parser(sub) -> None:
    p = sub.add_parser("study-run", help="(internal) the Study page's background worker for one study")
    p.add_argument("name")
    p.add_argument("--root")
    p.set_defaults(func=c.cmd_study_run)


def add_debias_sweep_parser(sub) -> None:
    p = sub.add_parser("debias-sweep", help="choose K / R and the best training-free debiasing method on "
                                            "held-out MLQA-R groups")
    p.add_argument("--out", default=str(REFERENCE_DIR / "debias-sweep"))
    add_model_argument(p)
    p.set_defaults(func=c.cmd_debias_sweep)


def add_transductive_spread_parser(sub) -> None:
    p = sub.add_parser("transductive-spread", help="refit an index-time (transductive) method with other samples "
                       "of test questions and report the spread of its figures (experiments/transductive.py)")
    add_model_argument(p)
    p.add_argument("--task", default="xquad-r")
    p.add_argument("--method", default="center@index")
    p.add_argument("--sample-seeds", default="0,1,2,3,4")
    p.add_argument("--languages")
    p.add_argument("--limit", type=int)
    add_precision_argument(p)
    p.add_argument("--out", help="write the per-seed figures and the spread as JSON")
    p.set_defaults(func=c.cmd_transductive_spread)


def add_ship_parser(sub) -> None:
    p = sub.add_parser("ship", help="write compact models (deltas from the base) of fine-tuned units into a bundle")
    p.add_argument("bundle")
    p.add_argument("--units", required=True, help="comma-separated unit labels, e.g. x-x-mono-s0,x-y-s0,hybrid-s0")
    p.add_argument("--encoding", help="lowrank:r=<rank> | int4 | int8 (default lowrank:r=48)")
    p.set_defaults(func=c.cmd_ship)


def add_robustness_parser(sub) -> None:
    p = sub.add_parser("robustness", help="the Robustness page as markdown: each set-up's sampler verdict and "
                                          "where set-ups disagree")
    p.add_argument("bundles", nargs="*", help=f"bundle folders (default: every bundle in {_rel(REFERENCE_DIR)}/)")
    p.add_argument("--pair", help="a,b: instead, the page's forest plot as a table: Δ (b − a) per set-up, "
                                  "benchmark and setting, e.g. x-x-mono,hybrid")
    p.add_argument("--metric", default="mAP", help="the metric of --pair (mAP, max_rank_distance, nDCG@10, ...)")
    p.set_defaults(func=c.cmd_robustness)


def add_answers_parser(sub) -> None:
    p = sub.add_parser("answers", help="the converged regime's five questions (issue #31), answered with intervals "
                                       "from a converged bundle against its 100-step twins")
    p.add_argument("bundles", nargs="*", help="converged bundle folders (default: every early-stopped bundle in "
                                              f"{_rel(REFERENCE_DIR)}/)")
    p.add_argument("--twins", nargs="*", help="the 100-step bundles to compare with (default: those in "
                                              f"{_rel(REFERENCE_DIR)}/ with the same encoder, data and batch)")
    p.set_defaults(func=c.cmd_answers)


def add_export_mteb_parser(sub) -> None:
    p = sub.add_parser("export-mteb", help="write an mkqa-mteb evaluation as MTEB's result JSON (MKQARetrieval.json)")
    p.add_argument("folder", help="an evaluation folder (metrics.json of task mkqa-mteb)")
    p.add_argument("--out", help="output file (default: <folder>/MKQARetrieval.json)")
    p.set_defaults(func=c.cmd_export_mteb)


def add_mkqa_nq_parser(sub) -> None:
    p = sub.add_parser("mkqa-nq", help="BGE-M3's MKQA protocol: MKQA questions retrieve English NQ passages "
                                       f"(needs a local BEIR NQ corpus; precision: {DEFAULT_HELP})")
    p.add_argument("--corpus", help="BEIR NQ folder or its corpus.jsonl (default: $HYBRIDVIZ_NQ_CORPUS)")
    add_model_argument(p)
    p.add_argument("--languages", help="comma-separated MKQA languages (default: all)")
    p.add_argument("--index", default="exact", help="exact (faiss IndexFlatIP) | hnsw | ivf")
    p.add_argument("--limit-passages", type=int, help="only the first N passages (a cost sample)")
    p.add_argument("--limit-queries", type=int, help="only the first N questions per language")
    p.add_argument("--encode-only", action="store_true",
                   help="encode this process's shards and stop (one torchrun rank of a sharded encode)")
    p.add_argument("--out", help="folder for metrics.json")
    p.set_defaults(func=c.cmd_mkqa_nq)


# the order of `--help`
COMMANDS = (add_evaluate_parser, add_fetch_parser, add_train_parser, add_sweep_parser, add_budget_parser,
            add_curves_parser, add_experiment_parser, add_merge_bundles_parser, add_compact_results_parser,
            add_summarise_parser, add_lab_run_parser, add_study_run_parser, add_debias_sweep_parser,
            add_transductive_spread_parser, add_ship_parser, add_robustness_parser, add_answers_parser,
            add_export_mteb_parser,
            add_mkqa_nq_parser, add_data_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hybridviz", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser
