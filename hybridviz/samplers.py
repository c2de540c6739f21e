"""hybridviz's batch samplers for any sentence-transformers training script (docs/samplers.md).

- ``HybridBatchSampler``: each batch is monolingual (one language, drawn per batch) with probability ``alpha``,
  otherwise cross-lingual (every pair's query language differs from its passage language);
- ``XXMonoBatchSampler``: every batch monolingual (``alpha=1``);
- ``XYBatchSampler``: every batch cross-lingual (``alpha=0``).

A batch never holds two pairs of one ``group`` nor one text twice (in-batch negatives would be false negatives).
They are the classes hybridviz's own trainer uses: the same data, batch size and seed give the same batches.

The samplers read the columns ``query``, ``positive``, ``query_lang``, ``passage_lang`` (or ``positive_lang``) and,
optionally, ``group``. The trainer would feed every column of its dataset to the loss, so bind the columns to the
sampler with ``for_dataset`` and give the trainer only the texts::

    from hybridviz.samplers import HybridBatchSampler

    args = SentenceTransformerTrainingArguments(
        output_dir="out", per_device_train_batch_size=32, seed=0,
        batch_sampler=HybridBatchSampler.for_dataset(train, alpha=0.5),
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, loss=MultipleNegativesRankingLoss(model),
                                         train_dataset=train.select_columns(["query", "positive"]))

See examples/train_with_sentence_transformers.py for a complete script.
"""

from hybridviz.training.samplers import (
    COLUMNS,
    HybridBatchSampler,
    SamplerConfigError,
    SourceMixBatchSampler,
    XXMonoBatchSampler,
    XYBatchSampler,
    language_columns,
)

__all__ = ["COLUMNS", "HybridBatchSampler", "SamplerConfigError", "SourceMixBatchSampler", "XXMonoBatchSampler",
           "XYBatchSampler", "language_columns"]
