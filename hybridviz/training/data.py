"""Training pairs: parallel (question, answer sentence) pairs linked by question id.

Default source: MLQA-R dev (ar de en es hi vi zh). For a question id present in languages L, every ordered pair
(i, j) of L gives one pair: the question in language i with the answer sentence in language j. i == j pairs are
monolingual, i != j cross-lingual. XQuAD-R and MKQA are evaluation data and never training data by default.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from hybridviz.data.beir import is_beir_task, resolve_folder
from hybridviz.data.paths import UPLOADS_DIR, data_dirs, sha256_file
from hybridviz.data.text import normalise
from hybridviz.errors import DataFileMissing, DataFormatError, HybridvizError
from hybridviz.fileio import iter_jsonl


@dataclass
class PairSet:
    """Parallel training pairs as columns (what a `datasets.Dataset` is built from)."""

    query: list[str] = field(default_factory=list)
    positive: list[str] = field(default_factory=list)
    query_lang: list[str] = field(default_factory=list)
    passage_lang: list[str] = field(default_factory=list)
    group: list[str] = field(default_factory=list)  # the parallel-set id (question id)
    origin: list[str] = field(default_factory=list)  # the source of each pair (a multi-source mix; else "")
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)
    excluded_groups: int = 0  # parallel sets left out because a text of theirs is evaluation data

    def __len__(self) -> int:
        return len(self.query)

    def add(self, query: str, positive: str, query_lang: str, passage_lang: str, group: str, origin: str = "") -> None:
        self.query.append(query)
        self.positive.append(positive)
        self.query_lang.append(query_lang)
        self.passage_lang.append(passage_lang)
        self.group.append(group)
        self.origin.append(origin)

    @property
    def sources(self) -> list[str]:
        """The sources of a mix, in order of first appearance ([] for a single source)."""
        return [o for o in dict.fromkeys(self.origin) if o]

    @property
    def languages(self) -> list[str]:
        return sorted(set(self.query_lang) | set(self.passage_lang))

    def counts(self) -> dict:
        """Pairs per query language (mono / cross) and per ordered language pair."""
        per_pair = Counter(f"{q}-{p}" for q, p in zip(self.query_lang, self.passage_lang))
        per_lang = {lang: {"mono": per_pair.get(f"{lang}-{lang}", 0),
                           "cross": sum(n for k, n in per_pair.items()
                                        if k.split("-")[0] == lang and k.split("-")[1] != lang)}
                    for lang in self.languages}
        return {"pairs": len(self), "groups": len(set(self.group)), "per_language": per_lang,
                "per_pair": dict(sorted(per_pair.items())), "excluded_groups": self.excluded_groups,
                **({"per_source": dict(Counter(self.origin))} if self.sources else {})}

    def columns(self) -> dict[str, list[str]]:
        return {"query": self.query, "positive": self.positive, "query_lang": self.query_lang,
                "passage_lang": self.passage_lang, "group": self.group}

    def by_source(self) -> dict[str, "PairSet"]:
        """A mix split into its sources (a single source: itself)."""
        if not self.sources:
            return {self.source: self}
        return {name: subset(self, [i for i, o in enumerate(self.origin) if o == name]) for name in self.sources}


def subset(pairs: PairSet, keep: list[int]) -> PairSet:
    out = PairSet(source=pairs.source, files=pairs.files, excluded_groups=pairs.excluded_groups)
    for name in ("query", "positive", "query_lang", "passage_lang", "group", "origin"):
        setattr(out, name, [getattr(pairs, name)[i] for i in keep])
    return out


def mix_pairs(parts: dict[str, PairSet]) -> PairSet:
    """Several sources as one PairSet whose `origin` column names each pair's source (group ids stay distinct:
    each is prefixed by its source)."""
    out = PairSet(source="+".join(parts))
    for name, pairs in parts.items():
        for q, p, ql, pl, g in zip(pairs.query, pairs.positive, pairs.query_lang, pairs.passage_lang, pairs.group):
            out.add(q, p, ql, pl, f"{name}|{g}", name)
        out.files |= pairs.files
        out.excluded_groups += pairs.excluded_groups
    return out


def pairs_corpus(pairs: PairSet):
    """A retrieval task over pairs: the distinct questions against the distinct answers, relevant by group."""
    from hybridviz.tasks import Corpus

    queries: dict[tuple[str, str], str] = {}
    cands: dict[tuple[str, str], set] = defaultdict(set)
    for q, p, ql, pl, g in zip(pairs.query, pairs.positive, pairs.query_lang, pairs.passage_lang, pairs.group):
        queries.setdefault((ql, q), g)
        cands[(pl, p)].add(g)
    qk, ck = list(queries), list(cands)
    return Corpus(task=f"{pairs.source}-pairs", languages=pairs.languages,
                  query_ids=[f"{lang}:{queries[(lang, t)]}" for lang, t in qk], query_langs=[k[0] for k in qk],
                  query_texts=[k[1] for k in qk], query_groups=[queries[k] for k in qk],
                  cand_ids=[f"{lang}:a{i}" for i, (lang, _) in enumerate(ck)], cand_langs=[k[0] for k in ck],
                  cand_texts=[k[1] for k in ck], cand_groups=[frozenset(cands[k]) for k in ck],
                  files=pairs.files)


def lareqa_pairs(benchmark: str = "mlqa-r", languages: list[str] | None = None) -> PairSet:
    """All (question_i, answer sentence_j) pairs of a LAReQA benchmark, parallel by question id."""
    from hybridviz.data.lareqa import load_lareqa

    data = load_lareqa(benchmark, languages)
    answer: dict[tuple[str, str], str] = {}
    for s in data.sentences:
        for group in s.groups:
            answer[(group, s.lang)] = s.text
    langs_of: dict[str, list[str]] = defaultdict(list)
    for lang_group in answer:
        langs_of[lang_group[0]].append(lang_group[1])
    pairs = PairSet(source=benchmark, files=data.files)
    for q in data.questions:
        for lang in sorted(langs_of[q.group]):
            pairs.add(q.text, answer[(q.group, lang)], q.lang, lang, q.group)
    return pairs


def extra_pairs(name: str, languages: list[str] | None = None) -> PairSet:
    """The pairs of an extra training source (data/train_extra.py): every (question_i, answer_j) of each parallel
    item, both languages among `languages` when given."""
    from hybridviz.data.train_extra import load_extra

    source = load_extra(name)
    keep = set(languages) if languages else None
    pairs = PairSet(source=name, files=source.files)
    for item in source.items:
        for q_lang, question in sorted(item.questions.items()):
            for p_lang, answer in sorted(item.answers.items()):
                if keep is None or (q_lang in keep and p_lang in keep):
                    pairs.add(question, answer, q_lang, p_lang, item.group)
    return drop_evaluation_overlap(pairs)


def drop_evaluation_overlap(pairs: PairSet, benchmarks: tuple[str, ...] = ("xquad-r", "mkqa")) -> PairSet:
    """`pairs` without every parallel set that has a text (normalised) in an evaluation benchmark, counted in
    `excluded_groups`. For the extra sources, whose short entity answers ("Lady Gaga") are MKQA answers too; the
    zero-shot guard then passes on what remains."""
    evaluation = _evaluation_texts(benchmarks)
    hit = {g for q, p, g in zip(pairs.query, pairs.positive, pairs.group)
           if hashlib.sha1(normalise(q).encode()).hexdigest() in evaluation
           or hashlib.sha1(normalise(p).encode()).hexdigest() in evaluation}
    out = subset(pairs, [i for i, g in enumerate(pairs.group) if g not in hit])
    out.excluded_groups = pairs.excluded_groups + len(hit)
    return out


# ------------------------------------------------------------------------------------------- user data

MAX_JSONL_BYTES = 50_000_000
MAX_TEXT_CHARS = 10_000
_LANG = re.compile(r"^[a-z]{2,3}(_[a-z]{2,4})?$")




def save_upload(data: bytes, root: str | Path | None = None, max_bytes: int = MAX_JSONL_BYTES) -> Path:
    """Keep an uploaded training JSONL as `<root>/<sha256>.jsonl` only if it is within the size limit and valid.

    The size is checked before anything is written; an invalid file raises `DataFormatError` naming the line and
    leaves nothing behind; the same bytes uploaded twice name the same file.
    """
    if len(data) > max_bytes:
        raise DataFormatError(f"The uploaded file is {len(data):,} bytes; the limit is {max_bytes:,}.")
    if not data.strip():
        raise DataFormatError("The uploaded file is empty; it needs JSON lines {id, lang, query, positive}.")
    root = Path(root or UPLOADS_DIR)
    target = root / f"{hashlib.sha256(data).hexdigest()[:24]}.jsonl"
    if target.is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{target.stem}.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(data)
        jsonl_pairs(tmp, max_bytes=max_bytes)  # raises with the line number; the finally below cleans up
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def jsonl_pairs(path: str | Path, max_bytes: int = MAX_JSONL_BYTES) -> PairSet:
    """User training data: JSON lines `{id, lang, query, positive}`; rows sharing `id` are parallel.

    Every row gives its monolingual pair; rows of one id in languages i != j give (query_i, positive_j).
    Errors name the line; nothing is returned unless the whole file is valid.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"Training file {path} does not exist.")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataFormatError(f"Training file {path} is {size:,} bytes; the limit is {max_bytes:,}.")
    rows: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    # bad bytes, malformed JSON and non-object lines are refused by the reader, naming "<file>, line <n>"
    for line_no, row in iter_jsonl(path, DataFormatError, "an object with id, lang, query, positive",
                                   where="{path}, line {line}"):
        where = f"{path}, line {line_no}"
        missing = [k for k in ("id", "lang", "query", "positive") if k not in row]
        if missing:
            raise DataFormatError(f"{where}: missing field(s) {', '.join(missing)}.")
        if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool):
            raise DataFormatError(f"{where}: id must be a string or an integer.")
        lang = row["lang"]
        if not isinstance(lang, str) or not _LANG.match(lang):
            raise DataFormatError(f"{where}: lang must be a language code such as 'en' or 'zh_cn', got {lang!r}.")
        for key in ("query", "positive"):
            text = row[key]
            if not isinstance(text, str) or not text.strip():
                raise DataFormatError(f"{where}: {key} must be a non-empty string.")
            if len(text) > MAX_TEXT_CHARS:
                raise DataFormatError(f"{where}: {key} has {len(text):,} characters; the limit is "
                                      f"{MAX_TEXT_CHARS:,}.")
        group = str(row["id"])
        if lang in rows[group]:
            raise DataFormatError(f"{where}: id {group!r} already has a row in {lang!r}.")
        rows[group][lang] = (row["query"], row["positive"])
    if not rows:
        raise DataFormatError(f"{path} holds no training rows.")
    pairs = PairSet(source=str(path), files={str(path): sha256_file(path)})
    for group, by_lang in rows.items():
        for q_lang, (query, _) in sorted(by_lang.items()):
            for p_lang, (_, positive) in sorted(by_lang.items()):
                pairs.add(query, positive, q_lang, p_lang, group)
    return pairs


# -------------------------------------------------------------------------------------- zero-shot guard


class ZeroShotViolation(HybridvizError):
    """Training texts that are also evaluation texts."""




def _evaluation_texts(benchmarks: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """normalised-text hash -> (benchmark, original text) for every evaluation text that is present."""
    # a grid checks every fine-tune against the same ~1M texts: reuse the set while no data file changes
    files = [f for d in data_dirs() if d.is_dir() for f in d.rglob("*") if f.is_file()]
    files += [f for name in benchmarks if is_beir_task(name) for f in resolve_folder(name).rglob("*") if f.is_file()]
    stamp = tuple(sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    return _evaluation_texts_of(tuple(benchmarks), stamp)


@lru_cache(maxsize=2)
def _evaluation_texts_of(benchmarks: tuple[str, ...], stamp: tuple) -> dict[str, tuple[str, str]]:
    from hybridviz.data.beir import load_beir
    from hybridviz.data.lareqa import load_lareqa
    from hybridviz.data.mkqa import load_mkqa

    out: dict[str, tuple[str, str]] = {}

    def add(name, text):
        out.setdefault(hashlib.sha1(normalise(text).encode()).hexdigest(), (name, text))

    for name in benchmarks:
        try:
            if is_beir_task(name):  # a custom evaluation set: its queries and corpus texts (with and without title)
                data = load_beir(name, checksums=False)
                for text in data.query_texts + data.doc_texts + data.doc_bodies:
                    if text.strip():
                        add(name, text)
            elif name == "mkqa":
                for ex in load_mkqa().examples:
                    for text in ex.queries.values():
                        add(name, text)
                    for answers in ex.answers.values():
                        for text in answers:
                            add(name, text)
            else:
                data = load_lareqa(name)
                for q in data.questions:
                    add(name, q.text)
                for s in data.sentences:
                    add(name, s.text)
        except DataFileMissing:
            continue  # a benchmark that is not here cannot leak into training
    return out


DEFAULT_GUARD = ("xquad-r", "mkqa")  # what a fine-tune is checked against when no evaluation sets are named


def guard_benchmarks(tasks) -> tuple[str, ...]:
    """The zero-shot guard's sets for evaluation tasks (names or {"task": ...} specs): every MKQA protocol reads
    MKQA's texts ("mkqa"); xquad-r, mlqa-r and custom sets (`beir:<folder>`) stand for themselves. In the order
    given, each once."""
    names = [t["task"] if isinstance(t, dict) else str(t) for t in tasks]
    return tuple(dict.fromkeys("mkqa" if n.startswith("mkqa") else n for n in names))


def check_zero_shot(pairs: PairSet, benchmarks: tuple[str, ...] = DEFAULT_GUARD) -> None:
    """Refuse training texts that occur (normalised) in an evaluation benchmark; the error names the set and the
    text of each (at most three) offending item."""
    benchmarks = tuple(benchmarks)
    evaluation = _evaluation_texts(benchmarks)
    offending = []
    for text in dict.fromkeys(pairs.query + pairs.positive):
        hit = evaluation.get(hashlib.sha1(normalise(text).encode()).hexdigest())
        if hit:
            offending.append(f"{hit[0]}: {hit[1][:60]!r}")
            if len(offending) == 3:
                break
    if offending:
        source = f" ({pairs.source})" if pairs.source.endswith(".jsonl") else ""
        raise ZeroShotViolation(f"Training data{source} overlaps the evaluation data, which would break the "
                                f"zero-shot setting; first offending items: {'; '.join(offending)} "
                                f"(checked against: {', '.join(benchmarks)}).")
