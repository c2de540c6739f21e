"""How soon a new user sees what a fine-tune did: the lab's sample-first evaluation, timed on a real model.

    python bench/first_results.py --out bench/results/first_results.json [--model me5-small] [--steps 5]

A lab run (the Fine-tune lab's worker code, `experiments.lab`) is trained for `--steps` steps; then the lab's
`evaluate_samples` scores each of the lab's default benchmarks on its seeded sample (SAMPLE_QUESTIONS questions,
labelled a sample on the page) and the full evaluation of the same benchmarks follows. Reported: the seconds from
the end of training to each sample's figures (the goal: every benchmark's sample within about 2 minutes), and the
full evaluation's seconds beside them (the baseline the sample shortens), with the sample's and the full
evaluation's multilingual mAP side by side.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from common import print_table, write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the result JSON here")
    parser.add_argument("--model", default="me5-small")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--no-full", action="store_true", help="time the samples only")
    args = parser.parse_args()

    from hybridviz.encoders.policy import evaluation_precision
    from hybridviz.evaluate import evaluate
    from hybridviz.experiments.lab import SAMPLE_QUESTIONS, evaluate_samples
    from hybridviz.results.store import read_metrics
    from hybridviz.tasks import DEFAULT_EVALUATIONS, task_dir
    from hybridviz.training.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(model=args.model, steps=args.steps, warmup_steps=0, seed=0)
        start = time.perf_counter()
        run = train(config, root=tmp)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        samples = evaluate_samples(run, config, DEFAULT_EVALUATIONS)
        samples_s = time.perf_counter() - start
        if samples is None:
            raise SystemExit(f"the sample evaluation failed: {(run.dir / 'evaluation.json').read_text()}")
        rows, elapsed = [], 0.0
        for spec in DEFAULT_EVALUATIONS:
            task = spec["task"]
            figures = samples.get(task, {})
            elapsed += figures.get("seconds", 0.0)
            row = {"benchmark": task, "sample_s": figures.get("seconds"), "after_training_s": round(elapsed, 1),
                   "sample multi mAP": figures.get("multi mAP"), "sample mono mAP": figures.get("mono mAP")}
            if not args.no_full:
                t = time.perf_counter()
                folder = run.dir / "evaluations" / task_dir(task)
                evaluate(str(run.model_dir), task, languages=spec.get("languages"), limit=spec.get("limit"),
                         out_dir=folder, precision=evaluation_precision(config.model))
                row["full_s"] = round(time.perf_counter() - t, 1)
                settings = read_metrics(folder).get("settings", {})
                row["full multi mAP"] = settings.get("multi", {}).get("macro", {}).get("mAP")
                row["full mono mAP"] = settings.get("mono", {}).get("macro", {}).get("mAP")
            rows.append(row)
    columns = ["benchmark", "sample_s", "after_training_s", "sample multi mAP", "full_s", "full multi mAP"]
    print_table(f"{args.model}: first figures after a {args.steps}-step lab fine-tune ({SAMPLE_QUESTIONS}-question "
                "samples)", rows, [c for c in columns if any(c in r for r in rows)])
    result = {"model": args.model, "steps": args.steps,
              "sample_questions": SAMPLE_QUESTIONS, "train_s": round(train_s, 1),
              "all_samples_after_training_s": round(samples_s, 1), "goal_s": 120,
              "baseline": "the full evaluation of the same benchmarks (what a user waited for before the samples)",
              "rows": rows}
    if not args.no_full:
        result["all_full_s"] = round(sum(r["full_s"] for r in rows), 1)
        result["ratio_full_over_samples"] = round(result["all_full_s"] / max(samples_s, 1e-9), 2)
    print(f"all samples {samples_s:.0f} s after training (goal 120 s)" +
          (f"; the full evaluations {result['all_full_s']:.0f} s" if not args.no_full else ""))
    if args.out:
        write_result(args.out, "first_results", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
