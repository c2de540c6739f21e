"""Embedding maps: samples of parallel items, their embeddings, and UMAP coordinates cached on disk.

Coordinates are keyed by (model fingerprint, precision, the items, the UMAP parameters), so a page reload or a
second user gets them without recomputing; a damaged cache file is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging

import numpy as np
import pandas as pd

from hybridviz.data.paths import UMAP_DIR
from hybridviz.fileio import atomic_write_bytes

SOURCES = {"xquad-r answers": "answer sentences of XQuAD-R questions (one per language)",
           "mkqa queries": "MKQA questions (the 1,000 examples with all 17 languages)"}


def parallel_items(source: str, n_groups: int, seed: int = 0, languages: list[str] | None = None
                   ) -> pd.DataFrame:
    """A seeded sample of `n_groups` parallel sets: columns item_id, group, lang, text, kind (encoder prefix).
    `source` is one of SOURCES or `beir:<folder>` (a custom set's queries whose group has two or more)."""
    rng = np.random.default_rng(seed)
    rows = []
    if source == "xquad-r answers":
        from hybridviz.data.lareqa import load_lareqa

        data = load_lareqa("xquad-r", languages)
        by_group: dict[str, dict[str, object]] = {}
        for s in data.sentences:
            for g in sorted(s.groups):
                by_group.setdefault(g, {}).setdefault(s.lang, s)
        complete = sorted(g for g, per in by_group.items() if len(per) == len(data.languages))
        for g in rng.choice(complete, size=min(n_groups, len(complete)), replace=False):
            for lang, s in sorted(by_group[g].items()):
                rows.append({"item_id": s.id, "group": g, "lang": lang, "text": s.text, "kind": "passage"})
    elif source == "mkqa queries":
        from hybridviz.data.mkqa import load_mkqa

        data = load_mkqa()
        langs = languages or data.languages
        complete = [e for e in data.examples if all(lang in e.queries for lang in langs)]
        for i in rng.choice(len(complete), size=min(n_groups, len(complete)), replace=False):
            e = complete[int(i)]
            for lang in langs:
                rows.append({"item_id": f"{lang}:{e.example_id}", "group": str(e.example_id), "lang": lang,
                             "text": e.queries[lang], "kind": "query"})
    elif source.startswith("beir:"):  # a custom evaluation set: its queries, linked by their group
        from hybridviz.tasks import build_corpus

        corpus = build_corpus(source, languages)
        by_group: dict[str, list[int]] = {}
        for q, group in enumerate(corpus.query_groups):
            by_group.setdefault(group, []).append(q)
        linked = sorted(g for g, qs in by_group.items() if len(qs) >= 2)  # translations to link
        for g in rng.choice(linked, size=min(n_groups, len(linked)), replace=False) if linked else []:
            for q in by_group[g]:
                rows.append({"item_id": corpus.query_ids[q], "group": g, "lang": corpus.query_langs[q],
                             "text": corpus.query_texts[q], "kind": "query"})
    else:
        from hybridviz.errors import UnknownName

        raise UnknownName(f"Unknown item source {source!r}; choose one of {', '.join(SOURCES)} or "
                          f"beir:<folder>.")
    return pd.DataFrame(rows, columns=["item_id", "group", "lang", "text", "kind"])


def embed_items(encoder, items: pd.DataFrame) -> np.ndarray:
    kind = items["kind"].iloc[0] if len(items) else "passage"
    return encoder.encode(list(items["text"]), kind, langs=list(items["lang"]))


def umap_cache_path(encoder, items: pd.DataFrame, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0):
    """Where umap_coordinates keeps the map of these items by this encoder (it exists once computed)."""
    key = hashlib.sha256(json.dumps([encoder.fingerprint, list(items["item_id"]), list(items["kind"]),
                                     n_neighbors, min_dist, seed]).encode()).hexdigest()[:24]
    return UMAP_DIR / f"{key}.npz"


def umap_coordinates(encoder, items: pd.DataFrame, n_neighbors: int = 15, min_dist: float = 0.1,
                     seed: int = 0) -> np.ndarray:
    """2-d UMAP (cosine) of the items' embeddings, cached under cache/umap/."""
    path = umap_cache_path(encoder, items, n_neighbors, min_dist, seed)
    if path.exists():
        try:
            with np.load(path) as z:
                coords = z["coords"]
            if coords.shape == (len(items), 2):
                return coords
        except Exception as exc:  # a damaged cache entry is recomputed, never trusted
            logging.getLogger("hybridviz").warning(f"damaged UMAP cache {path.name} ({exc}); recomputing")
    import umap

    vectors = embed_items(encoder, items)
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(items) - 1), min_dist=min_dist, metric="cosine",
                        random_state=seed, n_jobs=1)
    coords = reducer.fit_transform(vectors).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, coords=coords)
    atomic_write_bytes(path, buf.getvalue())
    return coords


def language_separation(vectors: np.ndarray, langs: list[str], groups: list[str]) -> dict:
    """How much the space is organised by language rather than meaning.

    silhouette_language: sklearn silhouette (cosine) of the language labels (high = clusters by language);
    parallel_rank: for each item, the mean rank of its parallel items among all others by cosine (1 = nearest).
    """
    from sklearn.metrics import silhouette_score

    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    ranks = np.empty_like(order)
    ranks[np.arange(len(order))[:, None], order] = np.arange(1, order.shape[1] + 1)[None, :]
    groups = np.asarray(groups)
    parallel = []
    for i in range(len(groups)):
        mates = np.flatnonzero((groups == groups[i]) & (np.arange(len(groups)) != i))
        if mates.size:
            parallel.append(ranks[i, mates].mean())
    return {"silhouette_language": float(silhouette_score(vectors, langs, metric="cosine"))
            if len(set(langs)) > 1 else None,
            "parallel_rank": float(np.mean(parallel)) if parallel else None}


# seconds per item for one model's map computed afresh (embedding + UMAP, numba's first compile included), per
# encoder spec as last measured on this machine; before any, bench/results/dashboard-fresh-final.json's cold
# Embedding map: 41.2 s for 2 models x 660 items (loads included) on an idle 2-core EPYC
MAP_TIMINGS = UMAP_DIR / "timings.json"
DEFAULT_SECONDS_PER_ITEM = 41.2 / (2 * 660)


def _rates() -> dict:
    try:
        rates = json.loads(MAP_TIMINGS.read_text())
        return rates if isinstance(rates, dict) else {}
    except (OSError, ValueError):
        return {}


def record_map_time(spec: str, seconds: float, n_items: int) -> None:
    """Keeps the rate of a map just computed afresh by the encoder `spec`, for map_seconds_estimate."""
    if n_items > 0:
        atomic_write_bytes(MAP_TIMINGS, json.dumps({**_rates(), spec: seconds / n_items}).encode())


def map_seconds_estimate(n_items: int, specs: list[str]) -> tuple[float, str]:
    """Seconds to compute the maps of `n_items` items by each encoder afresh, and where the rates come from."""
    rates = _rates()
    measured = [float(rates[s]) for s in specs if isinstance(rates.get(s), (int, float))]
    seconds = sum(float(rates[s]) if isinstance(rates.get(s), (int, float)) else DEFAULT_SECONDS_PER_ITEM
                  for s in specs) * n_items
    source = ("the last maps computed on this machine" if len(measured) == len(specs) else
              "a measured cold visit on an idle 2-core CPU" if not measured else
              "the last maps computed here and a measured cold visit")
    return seconds, source
