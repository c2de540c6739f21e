"""Training step time: hybridviz's trainer vs a plain sentence-transformers fit of the same steps.

    python bench/train_step.py --out bench/results/train_step.json [--model me5-small --steps 20]

Both train the same model from the same weights on the same MLQA-R pairs with the same loss
(MultipleNegativesRankingLoss, scale 1/τ), batch size, learning rate, maximum length, precision and frozen word
embeddings. The baseline is `SentenceTransformerTrainer` with its default batch sampler and no callbacks of ours;
ours is `hybridviz.training.train` (hybrid sampler, run registry, status/ETA/log callback, checkpoints off).
Figure: median seconds per step (the first step, with its lazy set-up, excluded) and ours / baseline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import print_table, write_result


def plain_fit(config, pairs) -> list[float]:
    """Seconds at the end of each step of a plain sentence-transformers fit."""
    import torch
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    from hybridviz.encoders import load_encoder

    torch.manual_seed(config.seed)
    encoder = load_encoder(config.model, use_cache=False)
    model = encoder.model
    model.max_seq_length = config.max_seq_length
    if config.freeze_word_embeddings:
        model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, max_steps=config.steps, per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate, warmup_steps=config.warmup_steps, seed=config.seed,
            save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, dataloader_drop_last=True,
            bf16=config.mixed_precision == "bf16",
            prompts={"query": encoder.query_prefix, "positive": encoder.passage_prefix})
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=Dataset.from_dict({"query": pairs.query,
                                                                     "positive": pairs.positive}),
            loss=MultipleNegativesRankingLoss(model, scale=1.0 / config.temperature), callbacks=[Stamp()])
        trainer.train()
    return stamps


def run(model: str, steps: int, batch_size: int, mixed_precision: str | None) -> dict:
    from hybridviz.training.trainer import TrainConfig, load_pairs, train

    config = TrainConfig(model=model, sampler="hybrid", steps=steps, batch_size=batch_size, save_steps=10 ** 6)
    if mixed_precision:
        config.mixed_precision = mixed_precision
    pairs = load_pairs(config)
    with tempfile.TemporaryDirectory() as root:
        run_ = train(config, root=Path(root))
        ours = [r["seconds"] for r in run_.train_log()]
    plain = plain_fit(config, pairs)

    def median_step(stamps):
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        return statistics.median(gaps) if gaps else float("nan")

    ours_s, plain_s = median_step(ours), median_step(plain)
    rows = [{"trainer": "plain sentence-transformers fit (default sampler)", "median_step_s": plain_s, "ratio": 1.0},
            {"trainer": "hybridviz train (hybrid sampler, registry, callbacks)", "median_step_s": ours_s,
             "ratio": ours_s / plain_s}]
    return {"model": model, "steps": steps, "batch_size": batch_size, "mixed_precision": config.mixed_precision,
            "baseline": "plain SentenceTransformerTrainer, same loss/batch/lr/precision", "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--mixed-precision", choices=["fp32", "bf16"], help="default: bf16 where the CPU has it")
    p.add_argument("--out", default="bench/results/train_step.json")
    args = p.parse_args()
    result = run(args.model, args.steps, args.batch_size, args.mixed_precision)
    write_result(args.out, "train_step", result)
    print_table(f"training step, {args.model}, batch {args.batch_size}, {result['mixed_precision']} "
                f"(ratio ours / plain; goal <= 1.2)", result["rows"], ["trainer", "median_step_s", "ratio"])


if __name__ == "__main__":
    main()
