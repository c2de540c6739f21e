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
    positions: np.ndarray | None = None  # pool positions of the index rows while the pool is only partly encoded

    @property
    def complete(self) -> bool:
        return self.positions is None

    @classmethod
    def build(cls, encoder, corpus: Corpus) -> "PoolIndex":
        for _, _, index in cls.build_stepwise(encoder, corpus):
            pass
        return index

    @classmethod
    def build_stepwise(cls, encoder, corpus: Corpus, chunk: int = 1024, first_chunk: int = 64):
        """Encode the pool a chunk at a time, yielding (encoded, total, index over what is encoded so far).

        Chunks interleave the languages, so a partial index already answers in every language; each chunk lands
        in the embedding cache as it is done. They start at `first_chunk` and double up to `chunk`: a CPU that
        encodes a dozen passages a second shows first (partial) results and an ETA within seconds, not after a
        whole 1024-passage chunk. The last index yielded is complete.
        """
        encoder.prepare(corpus)  # an index-time debiasing method fits on the pool it indexes
        known: dict[str, list[int]] = {}
        for i, text in enumerate(corpus.query_texts):
            known.setdefault(normalise(text), []).append(i)
        langs = np.asarray(corpus.cand_langs)
        rank_in_lang = np.zeros(len(langs), dtype=int)
        for lang in set(corpus.cand_langs):
            sel = np.flatnonzero(langs == lang)
            rank_in_lang[sel] = np.arange(sel.size)
        order = np.lexsort((np.arange(len(langs)), rank_in_lang))  # round robin over the languages
        vectors: np.ndarray | None = None
        total = len(order)
        bounds, size = [0], max(1, min(first_chunk, chunk))
        while bounds[-1] < total:
            bounds.append(min(bounds[-1] + size, total))
            size = min(size * 2, chunk)
        for start, end in zip(bounds, bounds[1:]):
            part = order[start:end]
            new = encoder.encode([corpus.cand_texts[i] for i in part], corpus.candidate_kind,
                                 langs=[corpus.cand_langs[i] for i in part])
            if vectors is None:
                vectors = np.zeros((total, new.shape[1]), dtype=np.float32)
            vectors[part] = new
            done = end
            if done < total:
                covered = np.sort(order[:done])
                yield done, total, cls(encoder, corpus, ExactIndex(vectors[covered]), known, covered)
        yield total, total, cls(encoder, corpus, ExactIndex(vectors if vectors is not None else
                                                            np.zeros((0, 1), np.float32)), known)

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
        q = self.encoder.encode([text], "query", langs=langs, store=False)
        corpus = self.corpus
        rows = np.arange(len(corpus.cand_ids)) if self.positions is None else self.positions
        if languages:
            allowed = np.flatnonzero(np.isin(np.asarray(corpus.cand_langs)[rows], languages))
            if allowed.size == 0:
                raise QueryError(f"No candidate of the pool is in {', '.join(languages)}.")
            scores = self.index.candidates[allowed] @ q[0]
            top_rows = allowed[np.argsort(-scores, kind="stable")[:k]]
        else:
            top_rows = self.index.search(q, k)[1][0]
        scores = self.index.candidates[top_rows] @ q[0]
        top = rows[top_rows]
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


def has_words(text: str) -> bool:
    """Whether a query has a letter or a digit in any script: one of only emoji, punctuation and symbols gives an
    encoder nothing to match, and its nearest neighbours (often at a high cosine) mean nothing."""
    return any(ch.isalnum() for ch in text)


class EncodingClock:
    """The time left while a pool is encoded, from the encoding rate alone: counted from the end of the first chunk,
    so loading the model and the first chunk's warm-up are not taken for the rate of every later candidate."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None

    def left(self, now: float, done: int, total: int) -> float | None:
        """Seconds left after `done` of `total` at time `now` (perf_counter); None until a rate is known."""
        if self.first is None:
            self.first = (now, done)
            return None
        since, base = self.first
        if done <= base or now <= since:
            return None
        return (now - since) / (done - base) * (total - done)
