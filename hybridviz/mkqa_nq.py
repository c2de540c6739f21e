"""`mkqa-nq`: BGE-M3's MKQA protocol for users who have the corpus. MKQA questions in each language retrieve
English Natural Questions passages (BEIR NQ, 2.68M); a hit is a passage containing a gold answer
(`data/nq.has_answer`); hit@k = share of questions with a hit in the top k (`hit_rate_at_k`: what BGE-M3 and
RocketQA call Recall@k; not metrics.py's recall, the share of a query's relevant items; k = 20 and 100 as BGE-M3
reports). Facts and sources: README "Tasks and settings" and the shared `mkqa_protocols.md`.

Questions: unanswerable, yes/no and long-answer examples removed (BGE-M3: 6,619 per language on the full MKQA).
Gold answers are the English ones: the corpus is English (BGE-M3's file does not say which it used).

Passage embeddings are written in shards of `SHARD_SIZE` passages to `cache/nq/<model fingerprint>/`, each
atomically once done, so an interrupted encode resumes at the next unfinished shard. Under torchrun every process
takes the shards i with i % WORLD_SIZE == RANK (on GPU LOCAL_RANK when there is one): the launcher is torch's,
not ours. Search is exact (faiss IndexFlatIP) by default; HNSW or IVF-Flat for the full corpus on a small
machine (bench/search.py measures their recall against exact).

The report is the shared metrics.json (results/format.py), written through the results store: one setting,
`SETTING` ("nq"), with hit@k per question language and macro-averaged, and a question language x passage language
(English) matrix per k for the heatmaps.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from hybridviz.data.mkqa import MkqaData, load_mkqa
from hybridviz.data.nq import Passage, corpus_path, has_answer, read_corpus
from hybridviz.data.paths import CACHE_DIR
from hybridviz.errors import UnknownName
from hybridviz.fileio import atomic_write_text
from hybridviz.provenance import provenance
from hybridviz.results.store import write_report

NQ_DIR = CACHE_DIR / "nq"
SHARD_SIZE = 50_000
KS = (20, 100)
INDEXES = ("exact", "hnsw", "ivf")
SETTING = "nq"  # MKQA questions in every language -> English NQ passages


def hit_name(k: int) -> str:
    return f"hit@{k}"


def questions(data: MkqaData, languages: list[str] | None = None) -> list[dict]:
    """(language, example id, question, English answers) for every answerable short-answer example."""
    out = []
    for ex in data.examples:
        if ex.is_binary or not ex.answers.get("en"):
            continue
        types = {t for ts in ex.answer_types.values() for t in ts}
        if types & {"unanswerable", "long_answer"}:
            continue
        for lang, text in sorted(ex.queries.items()):
            if (languages is None or lang in languages) and text:
                out.append({"lang": lang, "example_id": ex.example_id, "text": text, "answers": ex.answers["en"]})
    return out


def _shards(path: Path, limit: int | None) -> Iterator[list[Passage]]:
    """The corpus in consecutive shards of SHARD_SIZE passages, read lazily (one shard in memory at a time)."""
    current = []
    for passage in read_corpus(path, limit):
        current.append(passage)
        if len(current) == SHARD_SIZE:
            yield current
            current = []
    if current:
        yield current


def encode_corpus(encoder, path: Path, limit: int | None = None, rank: int | None = None,
                  world: int | None = None) -> tuple[Path, int, float]:
    """Encode this process's unfinished shards; returns (shard folder, passages encoded now, seconds)."""
    import torch

    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world = int(os.environ.get("WORLD_SIZE", 1)) if world is None else world
    if torch.cuda.is_available():  # under torchrun, one GPU per process
        encoder.model.to(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    total = sum(1 for _ in read_corpus(path, limit))  # a counting pass: minutes for NQ, beside hours of encoding
    n_shards = -(-total // SHARD_SIZE)
    key = hashlib.sha256(f"{encoder.fingerprint}|{path.resolve()}|{path.stat().st_size}|{limit}".encode())
    folder = NQ_DIR / key.hexdigest()[:24]
    folder.mkdir(parents=True, exist_ok=True)
    mine = {i for i in range(n_shards) if i % world == rank and not (folder / f"shard-{i:05d}.npz").exists()}
    todo = sum(min(SHARD_SIZE, total - i * SHARD_SIZE) for i in mine)
    start, done = time.perf_counter(), 0
    with tqdm(total=todo, desc=f"encoding NQ passages (rank {rank}/{world})", unit="passage",
              disable=todo == 0) as bar:
        for i, shard in enumerate(_shards(path, limit) if mine else ()):
            if i not in mine:
                continue
            vectors = encoder.encode([p.text for p in shard], "passage", progress=False,
                                     on_progress=lambda d, t, base=bar.n: bar.update(base + d - bar.n))
            tmp = folder / f"shard-{i:05d}.{os.getpid()}.tmp.npz"
            np.savez(tmp, ids=np.array([p.pid for p in shard]), vectors=vectors.astype(np.float32))
            os.replace(tmp, folder / f"shard-{i:05d}.npz")
            done += len(shard)
            bar.update(done - bar.n)
    atomic_write_text(folder / "shards.txt", f"{n_shards}\n")
    return folder, done, time.perf_counter() - start


def build_index(folder: Path, kind: str = "exact"):
    """All shards of `folder` in one faiss index (inner product); returns (index, passage ids)."""
    import faiss

    if kind not in INDEXES:
        raise UnknownName(f"Unknown index {kind!r}; use one of {', '.join(INDEXES)}.")
    expected = int((folder / "shards.txt").read_text())
    files = sorted(folder.glob("shard-*[0-9].npz"))
    if len(files) != expected:
        raise RuntimeError(f"{folder} holds {len(files)} of {expected} shards: encoding is not finished "
                           f"(rerun the command, or let every torchrun rank finish).")
    ids, parts = [], []
    for f in files:
        with np.load(f) as z:
            ids += z["ids"].tolist()
            parts.append(z["vectors"])
    x = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    d = x.shape[1]
    if kind == "exact":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    else:
        nlist = max(1, min(int(4 * np.sqrt(len(x))), len(x) // 39 or 1))  # faiss wants >= 39 points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(x)
        index.nprobe = 16
    index.add(x)
    return index, ids


def hit_rate_at_k(first_hit: list[int | None], k: int) -> float:
    """hit@k: share of questions whose first answer-containing passage is ranked at or above k (1-based)."""
    return float(np.mean([h is not None and h <= k for h in first_hit])) if first_hit else float("nan")


def evaluate_mkqa_nq(model: str, corpus: str | os.PathLike | None = None, languages: list[str] | None = None,
                     index_kind: str = "exact", limit_passages: int | None = None, limit_queries: int | None = None,
                     out_dir: str | os.PathLike | None = None, encoder=None) -> dict:
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.policy import evaluation_precision

    path = corpus_path(corpus)
    if encoder is None:  # no embedding cache: 2.68M passages live in the shards, not twice on disk
        encoder = load_encoder(model, use_cache=False, precision=evaluation_precision(model))
    qs = questions(load_mkqa(), languages)
    if limit_queries is not None:
        by_lang: dict[str, list[dict]] = {}
        for q in qs:
            by_lang.setdefault(q["lang"], []).append(q)
        qs = [q for lang in sorted(by_lang) for q in by_lang[lang][:limit_queries]]
    folder, encoded, seconds = encode_corpus(encoder, path, limit_passages)
    index, ids = build_index(folder, index_kind)
    Q = encoder.encode([q["text"] for q in qs], "query", langs=[q["lang"] for q in qs])
    depth = min(max(KS), len(ids))
    _, top = index.search(np.ascontiguousarray(Q, dtype=np.float32), depth)
    wanted = {ids[j] for row in top for j in row if j >= 0}
    texts = {p.pid: p.text for p in read_corpus(path, limit_passages) if p.pid in wanted}
    first_hit: dict[str, list] = {}
    for q, row in zip(qs, top):
        hit = next((rank for rank, j in enumerate(row, 1) if j >= 0 and has_answer(q["answers"], texts[ids[j]])),
                   None)
        first_hit.setdefault(q["lang"], []).append(hit)
    per_language = {lang: {hit_name(k): hit_rate_at_k(h, k) for k in KS} | {"n_queries": len(h)}
                    for lang, h in sorted(first_hit.items())}
    macro = {hit_name(k): float(np.mean([v[hit_name(k)] for v in per_language.values()])) for k in KS}
    report = {
        "task": "mkqa-nq", "protocol": "BGE-M3 (FlagEmbedding C_MTEB/MKQA): MKQA questions -> English NQ passages, "
                                       "answer containment, hit@k (BGE-M3's Recall@k)",
        "model": {"spec": model, "label": getattr(encoder, "label", model), "fingerprint": encoder.fingerprint,
                  "precision": getattr(encoder, "precision", None)},
        "languages": list(per_language),
        "settings": {SETTING: {"per_language": per_language, "macro": macro}},
        "matrices": {hit_name(k): {"rows": list(per_language), "cols": ["en"],
                                   "values": [[v[hit_name(k)]] for v in per_language.values()]} for k in KS},
        "corpus": {"file": str(path), "passages": len(ids), "limit": limit_passages, "index": index_kind},
        "cost": {"passages_encoded_now": encoded, "encode_s": seconds,
                 "encode_s_per_1000_passages": seconds / encoded * 1000 if encoded else None},
        "provenance": provenance(seed=0),
        "definitions": {"hit@k": "share of the questions whose top k passages hold one that contains a gold answer "
                                 "(BGE-M3's and RocketQA's Recall@k; a hit rate, not the share of relevant items)"},
    }
    if out_dir is not None:
        write_report(Path(out_dir), report)
    return report
