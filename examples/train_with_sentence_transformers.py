"""Fine-tune a retriever with a plain sentence-transformers trainer and hybridviz's batch samplers.

    python examples/train_with_sentence_transformers.py                      # tiny model, 20 steps, offline
    python examples/train_with_sentence_transformers.py --model me5-small --steps 100 --batch-size 32 \\
        --train-data my_pairs.jsonl --sampler hybrid --alpha 0.5 --output out/me5-hybrid

The training pairs come from hybridviz's loader: a built-in source (mlqa-r, or a train-extra source) or a JSONL
file of rows ``{"id", "lang", "query", "positive"}`` (rows sharing an id are translations; every ordered language
pair of an id becomes a training pair). They become a ``datasets.Dataset`` with the columns the samplers read:
``query``, ``positive``, ``query_lang``, ``passage_lang``, ``group``. Build that dataset from your own data in any
way you like; the rest of the script is the standard sentence-transformers recipe.

With the same data, batch size and seed, the batches are the ones ``python -m hybridviz train`` draws
(tests/test_public_samplers.py checks it). The saved folder lists the prefixes under the prompt names plain
sentence-transformers reads, so ``encode_query`` / ``encode_document`` (and MTEB) prepend them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

E5 = ("query: ", "passage: ")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny",
                        help="a sentence-transformers folder or hub name, or hybridviz's 'tiny' / 'me5-small' "
                             "(built offline into hybridviz's cache) [tiny]")
    parser.add_argument("--train-data", default="mlqa-r", help="mlqa-r, a train-extra source or a JSONL file [mlqa-r]")
    parser.add_argument("--languages", default="en,de", help="comma-separated training languages; '' for all [en,de]")
    parser.add_argument("--sampler", choices=("hybrid", "x-x-mono", "x-y"), default="hybrid")
    parser.add_argument("--alpha", type=float, default=0.5, help="share of monolingual batches (hybrid) [0.5]")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="[2e-3, for the tiny model; mE5: 3e-5]")
    parser.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature (scale 1/t) [0.05]")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-prefix", default=E5[0])
    parser.add_argument("--passage-prefix", default=E5[1])
    parser.add_argument("--output", default="out/st-example", help="where the fine-tuned model is saved")
    return parser.parse_args(argv)


def model_path(name: str) -> str:
    """hybridviz's offline models are sentence-transformers folders in its cache; anything else passes through."""
    if name == "tiny":
        from hybridviz.encoders.registry import tiny_dir

        return str(tiny_dir(0))
    if name == "me5-small":
        from hybridviz.encoders.registry import me5_small_dir

        return str(me5_small_dir())
    return name


def training_dataset(train_data: str, languages: list[str] | None):
    """A Dataset with the columns query, positive, query_lang, passage_lang, group (hybridviz's loader)."""
    from datasets import Dataset

    from hybridviz.training.trainer import TrainConfig, load_pairs

    pairs = load_pairs(TrainConfig(train_data=train_data, train_languages=languages))
    return Dataset.from_dict(pairs.columns())


def build(args: argparse.Namespace):
    """(trainer, model): a stock SentenceTransformerTrainer with a hybridviz batch sampler."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from hybridviz.samplers import HybridBatchSampler, XXMonoBatchSampler, XYBatchSampler

    train = training_dataset(args.train_data, [x for x in args.languages.split(",") if x] or None)
    # the sampler reads the language and group columns; the loss gets only the two texts
    if args.sampler == "hybrid":
        batch_sampler = HybridBatchSampler.for_dataset(train, alpha=args.alpha)
    else:
        batch_sampler = {"x-x-mono": XXMonoBatchSampler, "x-y": XYBatchSampler}[args.sampler].for_dataset(train)
    model = SentenceTransformer(model_path(args.model), device="cpu")
    model.max_seq_length = args.max_seq_length
    loss = MultipleNegativesRankingLoss(model, scale=1.0 / args.temperature)
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(args.output) / "checkpoints"), max_steps=args.steps,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate, warmup_steps=0,
        seed=args.seed, data_seed=args.seed, dataloader_drop_last=True, logging_steps=max(1, args.steps // 10),
        save_strategy="no", report_to=[], use_cpu=True,
        prompts={"query": args.query_prefix, "positive": args.passage_prefix},  # the prefixes, per column
        batch_sampler=batch_sampler,
    )
    trainer = SentenceTransformerTrainer(model=model, args=training_args, loss=loss,
                                         train_dataset=train.select_columns(["query", "positive"]))
    return trainer, model


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    trainer, model = build(args)
    trainer.train()
    # plain sentence-transformers reads "query" for encode_query and "document" first for encode_document
    model.prompts = {"query": args.query_prefix, "document": args.passage_prefix, "passage": args.passage_prefix}
    model.save(args.output)
    print(f"trained {trainer.state.global_step} steps ({args.sampler}) in {time.perf_counter() - start:.0f} s; "
          f"saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
