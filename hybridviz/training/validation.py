"""Held-out validation for early stopping, and probes of a benchmark along a run.

The validation pool must discriminate. Held-out *answer sentences* alone (the older sweep's pool: 834 questions
against 834 answers) put held-out mono mAP near .91. For a LAReQA source (MLQA-R) the pool here is, as in
XQuAD-R, **every sentence of every paragraph** that holds a held-out answer, in every training language. Since
questions of one paragraph share its sentences, the held-out unit is a *paragraph component*: questions linked
by a shared paragraph (in any language, through their parallel id) are held out together, so no training pair
has its answer sentence in the validation pool. Other sources have no paragraphs: their pool is the held-out
answers, and the run records which pool it used.

`HeldOutEvaluator` is a sentence-transformers evaluator: the trainer calls it every `eval_steps`, keeps the best
checkpoint by its primary metric (`load_best_model_at_end`) and stops after `patience` evaluations without a
gain (`EarlyStoppingCallback`). The criterion is declared once (`CRITERIA`) and is the same for every sampler.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import nullcontext
from functools import lru_cache

import numpy as np

from hybridviz.data.splits import held_out_groups, linked_components
from hybridviz.errors import HybridvizError

CRITERIA = {
    "mean_mAP": "the mean of held-out mono, cross and multi mAP (macro over query languages)",
    "multi_mAP": "held-out multilingual mAP (one pool of all languages)",
    "mono_mAP": "held-out monolingual mAP",
}
POOLS = ("answers", "paragraphs")


def paragraph_layout(benchmark: str, languages: list[str] | None):
    """(component of each question id, sentences of each (lang, paragraph), paragraphs of each question id) of a
    LAReQA benchmark: question ids that share a paragraph in any language form one component. Read once per
    benchmark and languages (the hold-out split and the validation pool both need it)."""
    return _paragraph_layout(benchmark, tuple(languages) if languages else None)


@lru_cache(maxsize=4)
def _paragraph_layout(benchmark: str, languages: tuple[str, ...] | None):
    from hybridviz.data.lareqa import load_lareqa

    data = load_lareqa(benchmark, list(languages) if languages else None)
    sentences = defaultdict(list)
    paragraphs_of = defaultdict(set)
    links = []
    for s in data.sentences:
        lang, paragraph, _ = s.id.split(":")
        sentences[(lang, paragraph)].append(s)
        for g in sorted(s.groups):
            paragraphs_of[g].add((lang, paragraph))
            links.append((f"p:{lang}:{paragraph}", f"q:{g}"))
    root = linked_components(links, [f"q:{q.group}" for q in data.questions])
    component = {q.group: root[f"q:{q.group}"] for q in data.questions}
    return component, sentences, paragraphs_of


def _is_paragraph_source(train_data: str) -> bool:
    from hybridviz.data.lareqa import BENCHMARKS

    return train_data in BENCHMARKS


def effective_pool(pool: str, train_data: str) -> str:
    """The pool a run validates on: "paragraphs" only for a LAReQA source (MLQA-R); every other source, a JSONL
    file included, holds out whole parallel groups (a JSONL file's ids) against their answers."""
    return pool if pool == "paragraphs" and _is_paragraph_source(train_data) else "answers"


def split_groups(pairs, fraction: float, seed: int, pool: str, train_data: str,
                 languages: list[str] | None) -> set[str]:
    """The held-out group ids: whole parallel groups (pool "answers") or whole paragraph components."""
    if pool == "paragraphs" and _is_paragraph_source(train_data):
        component, _, _ = paragraph_layout(train_data, languages)
        comps = [component.get(g, f"q:{g}") for g in pairs.group]
        held = held_out_groups(comps, fraction, seed)
        return {g for g, c in zip(pairs.group, comps) if c in held}
    return held_out_groups(pairs.group, fraction, seed)


def validation_corpus(val_pairs, pool: str, train_data: str, languages: list[str] | None):
    """The retrieval task of the held-out pairs: their questions against all sentences of their paragraphs
    (pool "paragraphs", LAReQA sources) or against their answer sentences (otherwise)."""
    from hybridviz.tasks import Corpus
    from hybridviz.training.data import pairs_corpus

    if not len(val_pairs):
        raise HybridvizError("The validation hold-out is empty: raise the holdout share.")
    if pool != "paragraphs" or not _is_paragraph_source(train_data):
        corpus = pairs_corpus(val_pairs)
        corpus.notes["pool"] = "answers"
        return corpus
    _, sentences, paragraphs_of = paragraph_layout(train_data, languages)
    held = set(val_pairs.group)
    queries: dict[tuple[str, str], str] = {}
    for q, ql, g in zip(val_pairs.query, val_pairs.query_lang, val_pairs.group):
        queries.setdefault((ql, q), g)
    langs = set(val_pairs.query_lang) | set(val_pairs.passage_lang)
    keys = sorted({p for g in held for p in paragraphs_of.get(g, ()) if p[0] in langs},
                  key=lambda p: (p[0], int(p[1])))
    cands = [s for key in keys for s in sentences[key]]
    qk = list(queries)
    corpus = Corpus(task=f"{train_data}-heldout", languages=sorted(langs),
                    query_ids=[f"{lang}:{queries[(lang, t)]}" for lang, t in qk], query_langs=[k[0] for k in qk],
                    query_texts=[k[1] for k in qk], query_groups=[queries[k] for k in qk],
                    cand_ids=[s.id for s in cands], cand_langs=[s.lang for s in cands],
                    cand_texts=[s.text for s in cands], cand_groups=[frozenset(s.groups & held) for s in cands],
                    files=val_pairs.files)
    corpus.notes["pool"] = "paragraphs"
    return corpus


def score_corpus(model, corpus, query_prefix: str, passage_prefix: str, precision: str = "fp32",
                 settings=("mono", "cross", "multi"), batch_size: int = 64) -> dict:
    """Macro mAP per setting of an in-memory sentence-transformers model on `corpus` (bf16 autocast when asked)."""
    import torch

    from hybridviz.evaluate import evaluate_setting

    context = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" and model.device.type == "cpu" \
        else nullcontext()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), context:
            kwargs = dict(batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=False)
            Q = np.asarray(model.encode([query_prefix + t for t in corpus.query_texts], **kwargs), dtype=np.float32)
            kind = query_prefix if corpus.candidate_kind == "query" else passage_prefix
            C = np.asarray(model.encode([kind + t for t in corpus.cand_texts], **kwargs), dtype=np.float32)
    finally:
        model.train(was_training)
    scores = {f"{s}_mAP": float(evaluate_setting(corpus, s, Q, C)[0]["macro"]["mAP"]) for s in settings}
    scores["mean_mAP"] = float(np.mean([scores[f"{s}_mAP"] for s in settings]))
    return scores


def _base_evaluator():
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    return BaseEvaluator


class HeldOutEvaluator(_base_evaluator()):
    """Scores the held-out pool; the trainer keeps the checkpoint with the best `criterion`."""

    def __init__(self, corpus, query_prefix: str, passage_prefix: str, criterion: str = "mean_mAP",
                 precision: str = "fp32", name: str = "heldout", on_score=None):
        super().__init__()
        if criterion not in CRITERIA:
            raise HybridvizError(f"Unknown stopping criterion {criterion!r}; choose one of {', '.join(CRITERIA)}.")
        self.corpus, self.query_prefix, self.passage_prefix = corpus, query_prefix, passage_prefix
        self.criterion, self.precision, self.name, self.on_score = criterion, precision, name, on_score
        self.greater_is_better = True
        self.primary_metric = criterion

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict:
        start = time.perf_counter()
        scores = self.score(model)
        if self.on_score:
            self.on_score(steps, scores, time.perf_counter() - start)
        return self.prefix_name_to_metrics(scores, self.name)

    def score(self, model) -> dict:
        return score_corpus(model, self.corpus, self.query_prefix, self.passage_prefix, self.precision)

    @property
    def metric_key(self) -> str:
        """The key the trainer compares checkpoints by."""
        return f"eval_{self.name}_{self.criterion}"


def probe_corpus(task: str = "xquad-r", paragraphs: int = 60, seed: int = 0):
    """A seeded sample of a LAReQA benchmark's paragraphs (the same index in every language: XQuAD-R is
    parallel) with all their sentences and the questions answered in them: a quick look at the benchmark along a
    run, labelled a sample wherever it is shown (its mAP is not the benchmark's, whose pool is every paragraph)."""
    from hybridviz.data.lareqa import load_lareqa
    from hybridviz.tasks import Corpus

    data = load_lareqa(task)
    indices = sorted({s.id.split(":")[1] for s in data.sentences}, key=int)
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(indices, size=min(paragraphs, len(indices)), replace=False).tolist())
    cands = [s for s in data.sentences if s.id.split(":")[1] in keep]
    groups = {g for s in cands for g in s.groups}
    questions = [q for q in data.questions if q.group in groups]
    corpus = Corpus(f"{task}-sample", data.languages, [q.id for q in questions], [q.lang for q in questions],
                    [q.text for q in questions], [q.group for q in questions], [s.id for s in cands],
                    [s.lang for s in cands], [s.text for s in cands], [s.groups for s in cands], files=data.files)
    corpus.notes.update({"sample": f"{len(keep)} of {len(indices)} paragraphs (seed {seed}), all their sentences "
                                   f"and questions", "paragraphs": len(keep), "seed": seed})
    return corpus
