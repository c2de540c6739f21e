"""Model cards: what a model read from local files is (its fingerprints, prefixes, lengths and languages), kept
under cache/model-cards and keyed by the files' paths, sizes and modification times, so that a later load takes
the fingerprint from the card instead of hashing ~0.5 GB of weights (and a warm evaluation never loads them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hybridviz.data import paths
from hybridviz.encoders.encoder import Encoder
from hybridviz.encoders.locators import declared_languages
from hybridviz.encoders.policy import PRECISIONS

CARD_VERSION = 2  # bump when loading, the fingerprint or the card's fields change: every card is then recomputed
CARD_LIBRARIES = ("torch", "transformers", "sentence-transformers", "tokenizers")


def sources_signature(sources: list[Path]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(f"card-v{CARD_VERSION}".encode())
    for name in CARD_LIBRARIES:
        try:
            h.update(f"{name}={version(name)}\n".encode())
        except PackageNotFoundError:
            h.update(f"{name}=-\n".encode())
    for source in sources:
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for f in files:
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()



def card_path(spec: str) -> Path:
    return paths.MODEL_CARDS_DIR / f"{hashlib.sha1(spec.encode()).hexdigest()}.json"


def read_card(spec: str, signature: str) -> dict | None:
    """The card of `spec` if it vouches for these very files (`signature`), else None."""
    try:
        card = json.loads(card_path(spec).read_text())
        declared = declared_languages(spec)
        ok = (card["spec"] == spec and card["signature"] == signature and set(card["fingerprints"]) == set(PRECISIONS)
              and all(card[k] is not None for k in ("label", "query_prefix", "passage_prefix", "max_seq_length",
                                                    "dimension"))
              and card.get("languages") == (sorted(declared) if declared is not None else None))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: the load hashes the weights and writes it again
    return card if ok else None


def write_card(spec: str, signature: str, encoder: Encoder) -> None:
    from hybridviz.fileio import write_json_atomic

    precision = encoder.precision
    fingerprints = {}
    for p in PRECISIONS:
        encoder.precision = p
        fingerprints[p] = encoder.fingerprint
    encoder.precision = precision
    card = {"spec": spec, "signature": signature, "label": encoder.label, "query_prefix": encoder.query_prefix,
            "passage_prefix": encoder.passage_prefix, "max_seq_length": encoder.max_seq_length,
            "dimension": encoder.dimension, "fingerprints": fingerprints,
            "languages": sorted(encoder.languages) if encoder.languages is not None else None}
    try:
        paths.MODEL_CARDS_DIR.mkdir(parents=True, exist_ok=True)
        write_json_atomic(card_path(spec), card)
    except OSError:
        pass  # a read-only cache only costs the next load its hashing

