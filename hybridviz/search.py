"""Ad hoc search: a typed query against a benchmark pool, exact inner-product search, relevance where known.

A pool is the candidate set of a task exactly as the experiment grid evaluates it, so the grid's embedding
cache serves it warm. A query that equals a benchmark query (after normalisation) gets its known relevant
items marked; any other query gets none marked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridviz.data.text import normalise
from hybridviz.errors import HybridvizError
from hybridviz.index import ExactIndex
from hybridviz.tasks import MKQA_ALL, Corpus, build_corpus

MAX_QUERY_CHARS = 2000
# pool name -> (task, languages, limit): the grid's evaluation slices
POOLS = {
    "XQuAD-R sentences": ("xquad-r", None, None),
    "MKQA answers": ("mkqa-answers", None, 1000),
    "MKQA queries": ("mkqa-queries", MKQA_ALL, None),
}


class QueryError(HybridvizError):
    """A query that cannot be searched (empty, or too long to be read by the model)."""


def check_query(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise QueryError("Type a query: an empty query has nothing to search for.")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"The query has {len(text):,} characters; the limit is {MAX_QUERY_CHARS:,} (the model reads "
                         f"at most 512 tokens). Shorten it to a question or a sentence.")
    return text


def load_pool(name: str) -> Corpus:
    if name not in POOLS:
        from hybridviz.errors import UnknownName

        raise UnknownName(f"Unknown pool {name!r}; choose one of {', '.join(POOLS)}.")
    task, languages, limit = POOLS[name]
    return build_corpus(task, languages, limit)


@dataclass
class PoolIndex:
    """One model's index over one pool (built once per model and pool; kept by the app's resource cache)."""

    encoder: object
    corpus: Corpus
    index: ExactIndex
    known_queries: dict[str, list[int]]  # normalised query text -> query positions in the corpus

    @classmethod
    def build(cls, encoder, corpus: Corpus) -> "PoolIndex":
        encoder.prepare(corpus)  # an index-time debiasing method fits on the pool it indexes
        vectors = encoder.encode(corpus.cand_texts, corpus.candidate_kind, langs=corpus.cand_langs)
        known: dict[str, list[int]] = {}
        for i, text in enumerate(corpus.query_texts):
            known.setdefault(normalise(text), []).append(i)
        return cls(encoder, corpus, ExactIndex(vectors), known)

    def unknown_token_share(self, text: str) -> float:
        """Share of the query's tokens the model's vocabulary does not know (a language it has never seen)."""
        tokenizer = getattr(self.encoder.model, "tokenizer", None)
        if tokenizer is None or tokenizer.unk_token_id is None:
            return 0.0
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return float(np.mean([i == tokenizer.unk_token_id for i in ids])) if ids else 0.0

    def search(self, text: str, k: int = 10, languages: list[str] | None = None) -> pd.DataFrame:
        """Top-k of the pool (optionally only candidates in `languages`): rank, language, score, text, relevant."""
        text = check_query(text)
        # a known benchmark query brings its language; free text gets the nearest language (debiased models)
        matches = self.known_queries.get(normalise(text), [])
        langs = [self.corpus.query_langs[matches[0]]] if matches else None
        q = self.encoder.encode([text], "query", langs=langs)
        corpus = self.corpus
        if languages:
            allowed = np.flatnonzero(np.isin(corpus.cand_langs, languages))
            if allowed.size == 0:
                raise QueryError(f"No candidate of the pool is in {', '.join(languages)}.")
            scores = self.index.candidates[allowed] @ q[0]
            top = allowed[np.argsort(-scores, kind="stable")[:k]]
        else:
            top = self.index.search(q, k)[1][0]
        scores = self.index.candidates[top] @ q[0]
        relevant = set()
        for m in matches:
            relevant.update(corpus.relevant_candidates(m))
        return pd.DataFrame({
            "rank": np.arange(1, len(top) + 1), "lang": [corpus.cand_langs[i] for i in top],
            "score": np.round(scores.astype(float), 4), "text": [corpus.cand_texts[i] for i in top],
            "relevant": [("yes" if i in relevant else "no") if matches else "unknown" for i in top],
            "candidate_id": [corpus.cand_ids[i] for i in top]})


def example_queries(corpus: Corpus, n: int = 8, seed: int = 0) -> list[str]:
    """A seeded sample of the pool's benchmark queries (their relevant items are known)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(corpus.query_texts), size=min(n, len(corpus.query_texts)), replace=False)
    return [corpus.query_texts[i] for i in idx]
