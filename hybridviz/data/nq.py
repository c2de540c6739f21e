"""BEIR-format Natural Questions passages, and BGE-M3's answer matching for MKQA (FlagEmbedding C_MTEB/MKQA).

The corpus is a local BEIR `corpus.jsonl` (one JSON object per line: `_id`, `title`, `text`; BEIR NQ has 2.68M):
no hub is reachable at run time, so it is given by path (`--corpus` or HYBRIDVIZ_NQ_CORPUS). A passage is its
title, a newline and its text, punctuation-normalised and lower-cased, for encoding and matching alike
(BGE-M3's step0/step2). A passage answers a question when, after Unicode NFD and lower-cased tokenisation into
runs of letters/digits/marks or single other visible characters, the token sequence of one gold answer occurs
contiguously in the passage's (Contriever's `has_answer`): case and composed/decomposed accents do not matter,
a partial token never matches ("Paris" is not in "Parisian"), and punctuation is a token of its own.
"""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import regex

from hybridviz.errors import DataFileMissing, DataFormatError

CORPUS_ENV = "HYBRIDVIZ_NQ_CORPUS"
SOURCE = ("BEIR's NQ (https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/nq.zip, CC BY-SA 3.0), "
          "unpacked; pass the folder with --corpus or HYBRIDVIZ_NQ_CORPUS")
_TOKEN = regex.compile(r"([\p{L}\p{N}\p{M}]+)|([^\p{Z}\p{C}])", flags=regex.IGNORECASE | regex.UNICODE)

# BGE-M3's punctuation normalisation (utils/normalize_text.py, after ChemDataExtractor): variants unified.
_DROP = {chr(c) for c in (1, 2, 3, 4, 5, 6, 7, 8, 0x0E, 0x0F, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
                          0x1A, 0x1B)} | {"\u00ad"}  # control characters; the soft hyphen
_REPLACE = {
    **{c: " " for c in "\u000b\u000c\u0085"},
    **{c: "-" for c in "\u2010\u2011\u2043\u2012\u2013\u2014\u2015\u2212\uff0d\u207b"},  # hyphens, dashes, minuses
    **{c: '"' for c in "\u201c\u201d\u201e\u201f"},  # double quotes
    **{c: "'" for c in "\u2018\u2019\u201a\u201b\u055a\ua78b\ua78c\uff07\u0060\u00b4\u2032\u2035"},  # single/prime
    "\u2033": "''", "\u2036": "''", "\u2034": "'''", "\u2037": "'''", "\u2057": "''''",  # multiple primes
    "\u2026": "...",  # ellipsis
    **{c: "/" for c in "\u2044\u2215"},  # slashes
}
_TABLE = str.maketrans({**{c: None for c in _DROP}, **_REPLACE})


def normalise_punctuation(text: str) -> str:
    return text.translate(_TABLE).replace(" . . . ", " ... ")


def passage_text(title: str, text: str) -> str:
    """What is encoded and matched: title, newline, text; punctuation-normalised and lower-cased."""
    return normalise_punctuation(f"{title}\n{text}").lower()


def tokens(text: str) -> list[str]:
    return [m.group().lower() for m in _TOKEN.finditer(unicodedata.normalize("NFD", text))]


def has_answer(answers: list[str], passage: str) -> bool:
    """Whether any answer's token sequence occurs contiguously in the passage's."""
    words = tokens(passage)
    for answer in answers:
        needle = tokens(answer)
        if needle and any(words[i : i + len(needle)] == needle for i in range(len(words) - len(needle) + 1)):
            return True
    return False


@dataclass(frozen=True)
class Passage:
    pid: str
    text: str  # passage_text(title, text)


def corpus_path(path: str | os.PathLike | None = None) -> Path:
    given = path or os.environ.get(CORPUS_ENV)
    p = Path(given) if given else None
    if p is not None and p.is_dir():
        p = p / "corpus.jsonl"
    if p is None or not p.is_file():
        raise DataFileMissing("corpus.jsonl", [str(p) if p else f"--corpus, {CORPUS_ENV} (neither given)"], SOURCE)
    return p


def read_corpus(path: str | os.PathLike, limit: int | None = None) -> Iterator[Passage]:
    """Stream the passages of a BEIR corpus.jsonl; a malformed line stops with its line number."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if limit is not None and line_no > limit:
                return
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pid, title, text = str(row["_id"]), row.get("title") or "", row["text"]
            except (ValueError, KeyError, TypeError) as exc:
                raise DataFormatError(f"{path}, line {line_no}: not a BEIR corpus row with _id and text "
                                      f"({type(exc).__name__}: {exc}).") from None
            yield Passage(pid, passage_text(title, text))
