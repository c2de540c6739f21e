"""Batch samplers for multilingual contrastive training (Elmahdy, Lin & Ahmad 2024, arXiv 2408.10536).

- ``x-x-mono``: every pair of a batch is monolingual, in one language drawn per batch (uniformly by default;
  ``language_weighting="proportional"`` draws ∝ the language's pair count, a float t draws ∝ count**t).
- ``x-y``: every pair of a batch has query language != passage language.
- ``hybrid``: each batch is x-x-mono with probability ``alpha``, otherwise x-y (``alpha=1`` is x-x-mono,
  ``alpha=0`` is x-y).

In-batch negatives make a duplicate a false negative, so a batch never holds two pairs of the same parallel
group (the same question in other languages is a paraphrase) nor the same text twice.

They subclass sentence-transformers' ``DefaultBatchSampler`` (whose ``SetEpochMixin`` the trainer calls each
epoch), so ``SentenceTransformerTrainingArguments(batch_sampler=functools.partial(HybridBatchSampler, alpha=.5))``
plugs them into the stock trainer. They read the columns ``query``, ``positive``, ``query_lang``,
``passage_lang`` (or ``positive_lang``) and, optionally, ``group`` (without it each pair is its own group), from the
dataset or, since the trainer would feed every column of its dataset to the loss, from ``metadata``:
``HybridBatchSampler.for_dataset(dataset_with_languages)`` binds them (docs/samplers.md). Under distributed training
the batch type is drawn once per optimizer step: consecutive runs of ``world_size`` batches share one type, and
accelerate deals those out one per rank.

Example::

    sampler = HybridBatchSampler(dataset, batch_size=32, drop_last=True, alpha=0.5, seed=0)
    for batch in sampler: ...  # lists of row indices
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Iterator

import numpy as np
from sentence_transformers.base.sampler import DefaultBatchSampler, MultiDatasetDefaultBatchSampler

from hybridviz.errors import HybridvizError

SAMPLERS = ("x-x-mono", "x-y", "hybrid")


class SamplerConfigError(HybridvizError):
    """A sampler setting that cannot work with this data."""


class _Queue:
    """Indices of one pool, reshuffled whenever exhausted (each pool cycles at its own pace)."""

    def __init__(self, indices: list[int], rng: np.random.Generator):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.rng = rng
        self.order: list[int] = []

    def take(self, n: int, groups, texts_q, texts_p, max_passes: int = 3) -> list[int]:
        """Up to n indices with pairwise distinct groups and texts; skipped ones stay queued for later."""
        batch, seen_groups, seen_texts, skipped = [], set(), set(), []
        budget = max_passes * len(self.indices)
        while len(batch) < n and budget > 0:
            if not self.order:
                self.order = self.rng.permutation(self.indices).tolist()
            i = self.order.pop()
            budget -= 1
            if groups[i] in seen_groups or texts_q[i] in seen_texts or texts_p[i] in seen_texts:
                skipped.append(i)
                continue
            batch.append(i)
            seen_groups.add(groups[i])
            seen_texts.update((texts_q[i], texts_p[i]))
        self.order.extend(reversed(skipped))  # first in line for the next batch
        return batch


class HybridBatchSampler(DefaultBatchSampler):
    """x-x-mono with probability ``alpha``, x-y otherwise, per batch (per optimizer step under DDP)."""

    def __init__(self, dataset, batch_size: int, drop_last: bool = True, valid_label_columns=None,
                 generator=None, seed: int = 0, alpha: float = 0.5,
                 language_weighting: str | float = "uniform", world_size: int | None = None,
                 num_batches: int | None = None, metadata: dict | None = None):
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        if not 0.0 <= float(alpha) <= 1.0:
            raise SamplerConfigError(f"alpha must lie in [0, 1], got {alpha}.")
        self.alpha = float(alpha)
        self.world_size = world_size or _world_size()
        # `metadata` carries the columns when the dataset handed to the trainer holds only the two texts; for a
        # multi-source mix it maps each source to its columns, and this sampler's dataset is the one whose queries
        # it holds (the trainer builds one sampler per source)
        if metadata is not None and not _has_columns(metadata):
            queries = list(dataset["query"])
            matching = [m for m in metadata.values() if list(m["query"]) == queries]
            if len(matching) != 1:
                raise SamplerConfigError(f"metadata names {len(matching)} sources with this dataset's queries.")
            metadata = matching[0]
        columns = language_columns(metadata if metadata is not None else dataset)
        self.groups = columns["group"]
        self.texts_q = columns["query"]
        self.texts_p = columns["positive"]
        qlang, plang = columns["query_lang"], columns["passage_lang"]
        if metadata is not None and len(qlang) != len(dataset):
            raise SamplerConfigError(f"metadata has {len(qlang)} rows, the dataset {len(dataset)}.")
        self.mono: dict[str, list[int]] = defaultdict(list)
        self.cross: list[int] = []
        for i, (q, p) in enumerate(zip(qlang, plang)):
            (self.mono[q] if q == p else self.cross).append(i)
        self.mono = dict(sorted(self.mono.items()))
        self.languages = list(self.mono)
        self.language_probs = self._language_probs(language_weighting)
        self._check(batch_size)
        self.num_batches = num_batches or max(1, len(qlang) // batch_size)

    @classmethod
    def for_dataset(cls, dataset, **kwargs) -> functools.partial:
        """A factory for ``SentenceTransformerTrainingArguments(batch_sampler=...)`` that reads the language columns
        of `dataset` (a ``datasets.Dataset`` or a dict of columns); give the trainer the same rows with only their
        text columns, ``dataset.select_columns(["query", "positive"])``. `kwargs`: ``alpha`` (hybrid only),
        ``language_weighting``. Picklable: checkpoints store it."""
        return functools.partial(cls, metadata=language_columns(dataset), **kwargs)

    def _language_probs(self, weighting) -> np.ndarray:
        counts = np.array([len(v) for v in self.mono.values()], dtype=float)
        if len(counts) == 0:
            return counts
        if weighting == "uniform":
            weights = np.ones_like(counts)
        elif weighting == "proportional":
            weights = counts
        else:
            try:
                weights = counts ** float(weighting)
            except (TypeError, ValueError):
                raise SamplerConfigError(f"language_weighting must be 'uniform', 'proportional' or a "
                                         f"temperature (a number), not {weighting!r}.") from None
        return weights / weights.sum()

    def _check(self, batch_size: int) -> None:
        if batch_size < 2:
            raise SamplerConfigError("in-batch negatives need a batch of at least 2 pairs.")
        if self.alpha > 0:
            if not self.mono:
                raise SamplerConfigError("x-x-mono batches need monolingual pairs; the data has none.")
            small = {lang: len({self.groups[i] for i in idx}) for lang, idx in self.mono.items()
                     if len({self.groups[i] for i in idx}) < batch_size}
            if small:
                raise SamplerConfigError(f"batch size {batch_size} exceeds the distinct monolingual pairs of "
                                         f"{', '.join(f'{k} ({v})' for k, v in small.items())}.")
        if self.alpha < 1:
            distinct = len({self.groups[i] for i in self.cross})
            if distinct < batch_size:
                raise SamplerConfigError(f"batch size {batch_size} exceeds the {distinct} parallel groups that "
                                         f"have cross-lingual pairs.")

    def __len__(self) -> int:
        return self.num_batches

    def batch_types(self) -> Iterator[str]:
        """The type of every batch of this epoch, in order ("mono:<lang>" or "x-y")."""
        rng = np.random.default_rng([self.seed, self.epoch, 0])
        step_type = None
        for b in range(self.num_batches):
            if b % self.world_size == 0:  # one draw per optimizer step, shared by all ranks
                if rng.random() < self.alpha:
                    step_type = "mono:" + self.languages[rng.choice(len(self.languages), p=self.language_probs)]
                else:
                    step_type = "x-y"
            yield step_type

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        queues = {lang: _Queue(idx, rng) for lang, idx in self.mono.items()}
        cross = _Queue(self.cross, rng)
        for kind in self.batch_types():
            queue = cross if kind == "x-y" else queues[kind.split(":", 1)[1]]
            batch = queue.take(self.batch_size, self.groups, self.texts_q, self.texts_p)
            if len(batch) == self.batch_size or (batch and not self.drop_last):
                yield batch


class XXMonoBatchSampler(HybridBatchSampler):
    """Every batch monolingual, in one language per batch (``HybridBatchSampler`` at ``alpha=1``)."""

    def __init__(self, dataset, batch_size: int, drop_last: bool = True, valid_label_columns=None,
                 generator=None, seed: int = 0, **kwargs):
        if "alpha" in kwargs:
            raise SamplerConfigError("XXMonoBatchSampler has alpha 1; use HybridBatchSampler for another alpha.")
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed, alpha=1.0, **kwargs)


class XYBatchSampler(HybridBatchSampler):
    """Every pair of every batch cross-lingual (``HybridBatchSampler`` at ``alpha=0``)."""

    def __init__(self, dataset, batch_size: int, drop_last: bool = True, valid_label_columns=None,
                 generator=None, seed: int = 0, **kwargs):
        if "alpha" in kwargs:
            raise SamplerConfigError("XYBatchSampler has alpha 0; use HybridBatchSampler for another alpha.")
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed, alpha=0.0, **kwargs)


COLUMNS = ("query", "positive", "query_lang", "passage_lang")  # and "group", optional


def _has_columns(data) -> bool:
    names = data.column_names if hasattr(data, "column_names") else list(data)
    return "query" in names and "query_lang" in names


def language_columns(data) -> dict[str, list]:
    """The columns the samplers read, as lists: ``query``, ``positive``, ``query_lang``, ``passage_lang`` (a
    ``positive_lang`` column is taken for it) and ``group`` (pairs of one group never share a batch: give the
    translations of one question one group; without the column each pair is its own group)."""
    names = list(data.column_names) if hasattr(data, "column_names") else list(data)
    passage_lang = "passage_lang" if "passage_lang" in names else "positive_lang"
    missing = [c for c in ("query", "positive", "query_lang") if c not in names]
    missing += [] if passage_lang in names else ["passage_lang (or positive_lang)"]
    if missing:
        raise SamplerConfigError(f"The batch samplers need the columns query, positive, query_lang and "
                                 f"passage_lang (group optional); missing {', '.join(missing)} "
                                 f"(found: {', '.join(map(str, names)) or 'none'}).")
    out = {c: list(data[c]) for c in ("query", "positive", "query_lang")}
    out["passage_lang"] = list(data[passage_lang])
    out["group"] = list(data["group"]) if "group" in names else list(range(len(out["query"])))
    lengths = {len(v) for v in out.values()}
    if len(lengths) != 1:
        raise SamplerConfigError(f"The sampler columns differ in length ({sorted(lengths)}).")
    return out


class SourceMixBatchSampler(MultiDatasetDefaultBatchSampler):
    """A multi-source mix (sentence-transformers' multi-dataset hook): each batch (each optimizer step under DDP)
    comes from one source drawn with probability ∝ n_s^temperature, n_s its pairs (1: by size, the paper's "sampled
    based on dataset size"; 0: uniform); that source's own sampler (x-x-mono / x-y / hybrid) makes the batch. A
    source drawn more often than it has batches starts a new pass of its sampler."""

    def __init__(self, dataset, batch_samplers, generator=None, seed: int = 0, temperature: float = 1.0,
                 world_size: int | None = None):
        super().__init__(dataset, batch_samplers, generator=generator, seed=seed)
        if not 0.0 <= float(temperature) <= 1.0:
            raise SamplerConfigError(f"source temperature must lie in [0, 1], got {temperature}.")
        sizes = np.array([len(d) for d in dataset.datasets], dtype=float)
        weights = sizes ** float(temperature)
        self.probs = weights / weights.sum()
        self.world_size = world_size or _world_size()
        self.num_batches = sum(len(s) for s in batch_samplers)

    def __len__(self) -> int:
        return self.num_batches

    def source_order(self) -> Iterator[int]:
        """The source of every batch of this epoch (one draw per optimizer step, shared by all ranks)."""
        rng = np.random.default_rng([self.seed, self.epoch, 2])
        source = 0
        for b in range(self.num_batches):
            if b % self.world_size == 0:
                source = int(rng.choice(len(self.probs), p=self.probs))
            yield source

    def __iter__(self) -> Iterator[list[int]]:
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in self.dataset.datasets])]).astype(int)
        passes = [0] * len(self.batch_samplers)
        iterators = [iter(s) for s in self.batch_samplers]
        for source in self.source_order():
            batch = next(iterators[source], None)
            if batch is None:  # this source is used up: a new pass of its sampler, in another order
                passes[source] += 1
                sampler = self.batch_samplers[source]
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(self.epoch * 1000 + passes[source])
                iterators[source] = iter(sampler)
                batch = next(iterators[source], None)
            if batch:
                yield [int(i) + int(offsets[source]) for i in batch]


def sampler_alpha(name: str, alpha: float) -> float:
    """The probability of an x-x-mono batch a sampler uses: x-x-mono is hybrid at 1, x-y is hybrid at 0."""
    return {"x-x-mono": 1.0, "x-y": 0.0}.get(name, alpha)


def make_sampler(name: str, alpha: float = 0.5, **kwargs):
    """A batch-sampler factory for ``SentenceTransformerTrainingArguments(batch_sampler=...)``."""
    if name not in SAMPLERS:
        raise SamplerConfigError(f"Unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}.")
    alpha = sampler_alpha(name, alpha)
    return functools.partial(HybridBatchSampler, alpha=alpha, **kwargs)  # picklable: checkpoints store it


def _world_size() -> int:
    try:
        import torch.distributed as dist

        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    except Exception:
        return 1
