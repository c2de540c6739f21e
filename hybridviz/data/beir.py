"""A custom evaluation set in the BEIR layout (also MTEB's retrieval files): read and validated line by line.

A folder holds
    corpus.jsonl    {"_id", "text", "lang"} per line, "title" optional (BEIR: the title is put before the text);
    queries.jsonl   {"_id", "text", "lang"} per line, "group" optional: queries sharing a group are translations
                    of one question (one query per group and language); without it a query is its own group;
    qrels/test.tsv  tab-separated, header `query-id<TAB>corpus-id<TAB>score`; score > 0 is relevant.
MTEB's retrieval files are accepted too: qrels/test.jsonl (rows {"query-id", "corpus-id", "score"}) in place of
the TSV, and gzip-compressed corpus / queries (`corpus.jsonl.gz`). Queries that the test qrels do not name but
another split's qrels (qrels/train.tsv, qrels/dev.tsv, ...) do are left out, as BEIR's loader does; a query that
no qrels file names, or only with score <= 0, is an error.

`lang` is a language code ("en", "zh_cn", "pt-BR"): it defines the mono / cross / multi settings (tasks.py).

Everything is checked before anything is encoded or written; the first problem raises `BeirFormatError`, whose
message starts with `<file>:<line>:`. Reading is one pass per file with `json.loads` per line (a 100,000-line
file validates in about a second).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from hybridviz.data.paths import data_dirs, sha256_file
from hybridviz.errors import DataFormatError
from hybridviz.fileio import iter_jsonl, iter_lines

PREFIX = "beir:"
QRELS_HEADER = ("query-id", "corpus-id", "score")
# a language code: letters, digits, '_' and '-' (no ':', which separates a query id's language, and no '*')
_LANG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
MAX_SCORE_ABS = 1e9


class BeirFormatError(DataFormatError):
    """A custom evaluation folder that is missing a file or holds an invalid line (the message names both)."""


def is_beir_task(task: str) -> bool:
    return isinstance(task, str) and task.startswith(PREFIX)


def resolve_folder(task_or_folder: str | os.PathLike) -> Path:
    """The folder of `beir:<folder>` (or of a plain folder path): as given (absolute, or relative to the working
    directory), else relative to each data directory ($HYBRIDVIZ_DATA, ../shared/data, cache/data)."""
    spec = str(task_or_folder)
    spec = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    if not spec.strip():
        raise BeirFormatError("A custom evaluation set is named beir:<folder>; the folder is missing.")
    path = Path(spec).expanduser()
    tried = [path]
    if path.is_dir():
        return path
    if not path.is_absolute():
        for d in data_dirs():
            tried.append(d / path)
            if (d / path).is_dir():
                return d / path
    raise BeirFormatError(f"Evaluation set folder {spec} was not found (looked in: "
                          f"{', '.join(str(p) for p in tried)}).")


@dataclass
class BeirData:
    folder: Path
    layout: str  # "beir" (qrels/test.tsv) or "mteb" (qrels/test.jsonl)
    languages: list[str]  # every language of the queries and the corpus, sorted
    query_ids: list[str] = field(default_factory=list)  # the file's _id
    query_langs: list[str] = field(default_factory=list)
    query_texts: list[str] = field(default_factory=list)
    query_groups: list[str] = field(default_factory=list)  # "group", or the query's own _id
    doc_ids: list[str] = field(default_factory=list)
    doc_langs: list[str] = field(default_factory=list)
    doc_texts: list[str] = field(default_factory=list)  # "title text" where a title is given
    doc_bodies: list[str] = field(default_factory=list)  # the text alone (the zero-shot guard reads both)
    relevant: list[list[int]] = field(default_factory=list)  # per query: corpus positions with score > 0
    grades: list[list[float]] = field(default_factory=list)  # their scores, in the same order
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    notes: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- reading


def _first(folder: Path, names: list[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _json_rows(path: Path, fields: str) -> Iterator[tuple[int, dict]]:
    """(line, row) of a JSON-lines file, each line an object with `fields`: fileio.iter_jsonl, whose errors name
    the file and line as "<file>:<line>:" (a bad byte, malformed JSON, not an object, a damaged .gz)."""
    return iter_jsonl(path, BeirFormatError, f"a JSON object {fields}")


def _id(row: dict, key: str, where: str) -> str:
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise BeirFormatError(f"{where}: {key} must be a non-empty string or an integer, got {value!r}.")
    return str(value)


def _lang(row: dict, where: str) -> str:
    lang = row["lang"]
    if not isinstance(lang, str) or not lang.strip():
        raise BeirFormatError(f"{where}: lang is empty; give the language code of the text (such as 'en').")
    if not _LANG.match(lang):
        raise BeirFormatError(f"{where}: lang must be a language code such as 'en', 'zh_cn' or 'pt-BR' "
                              f"(letters, digits, '_' and '-'), got {lang!r}.")
    return lang


def _text(row: dict, key: str, where: str, allow_empty: bool = False) -> str:
    text = row.get(key)
    if not isinstance(text, str):
        raise BeirFormatError(f"{where}: {key} must be a string, got {type(text).__name__}.")
    if not allow_empty and not text.strip():
        raise BeirFormatError(f"{where}: {key} is empty.")
    return text


def _require(row: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise BeirFormatError(f"{where}: missing field(s) {', '.join(missing)} (each row needs "
                              f"{', '.join(keys)}).")


def _new_id(row: dict, where: str, line: int, seen: dict[str, int]) -> str:
    """The _id of a corpus or query row that has its three fields, refused if an earlier line (in `seen`, id ->
    line, updated here) has it."""
    _require(row, ("_id", "text", "lang"), where)
    row_id = _id(row, "_id", where)
    if row_id in seen:
        raise BeirFormatError(f"{where}: duplicate _id {row_id!r} (first on line {seen[row_id]}).")
    seen[row_id] = line
    return row_id


def _read_corpus(path: Path, data: BeirData) -> dict[str, int]:
    seen: dict[str, int] = {}  # _id -> line
    position: dict[str, int] = {}
    for n, row in _json_rows(path, '{"_id", "text", "lang"}'):
        where = f"{path}:{n}"
        doc_id = _new_id(row, where, n, seen)
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise BeirFormatError(f"{where}: title must be a string, got {type(title).__name__}.")
        text = _text(row, "text", where, allow_empty=bool(title.strip()))
        lang = _lang(row, where)
        position[doc_id] = len(data.doc_ids)
        data.doc_ids.append(doc_id)
        data.doc_langs.append(lang)
        data.doc_texts.append(f"{title} {text}".strip() if title.strip() else text)
        data.doc_bodies.append(text)
    if not data.doc_ids:
        raise BeirFormatError(f"{path}:1: the corpus holds no rows.")
    return position


def _read_queries(path: Path, data: BeirData) -> tuple[dict[str, int], list[int]]:
    seen: dict[str, int] = {}
    group_lang: dict[tuple[str, str], int] = {}  # (group, lang) -> line
    position: dict[str, int] = {}
    lines: list[int] = []
    for n, row in _json_rows(path, '{"_id", "text", "lang"}'):
        where = f"{path}:{n}"
        query_id = _new_id(row, where, n, seen)
        text = _text(row, "text", where)
        lang = _lang(row, where)
        group = _id(row, "group", where) if row.get("group") is not None else query_id
        if (group, lang) in group_lang:
            what = f"group {group!r}" if "group" in row else f"_id {group!r} (a query without group is its own)"
            raise BeirFormatError(f"{where}: {what} already has a query in {lang!r} (line "
                                  f"{group_lang[(group, lang)]}); a group holds one translation per language.")
        group_lang[(group, lang)] = n
        position[query_id] = len(data.query_ids)
        data.query_ids.append(query_id)
        data.query_langs.append(lang)
        data.query_texts.append(text)
        data.query_groups.append(group)
        lines.append(n)
    if not data.query_ids:
        raise BeirFormatError(f"{path}:1: the query file holds no rows.")
    return position, lines


def _qrel_rows(path: Path) -> Iterator[tuple[int, str, str, object]]:
    """(line, query id, corpus id, raw score) of a qrels file, TSV with its header or JSON lines."""
    if path.suffix == ".jsonl" or path.name.endswith(".jsonl.gz"):
        for n, row in _json_rows(path, '{"query-id", "corpus-id", "score"}'):
            where = f"{path}:{n}"
            _require(row, QRELS_HEADER, where)
            yield n, _id(row, "query-id", where), _id(row, "corpus-id", where), row["score"]
        return
    header_seen = False
    for n, line in iter_lines(path, BeirFormatError):
        if not line.strip():
            continue
        cells = line.split("\t")
        if not header_seen:
            if tuple(c.strip() for c in cells) != QRELS_HEADER:
                raise BeirFormatError(f"{path}:{n}: the header must be 'query-id<TAB>corpus-id<TAB>score', "
                                      f"got {line[:80]!r}.")
            header_seen = True
            continue
        if len(cells) != 3:
            raise BeirFormatError(f"{path}:{n}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                                  f"got {len(cells)}.")
        query_id, doc_id, score = (c.strip() for c in cells)
        if not query_id or not doc_id:
            raise BeirFormatError(f"{path}:{n}: {'query-id' if not query_id else 'corpus-id'} is empty.")
        yield n, query_id, doc_id, score
    if not header_seen:
        raise BeirFormatError(f"{path}:1: the file is empty; it needs the header 'query-id<TAB>corpus-id<TAB>score' "
                              f"and one row per judged pair.")


def _score(raw: object, where: str) -> float:
    if isinstance(raw, bool):
        raise BeirFormatError(f"{where}: score must be a number, got {raw!r}.")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BeirFormatError(f"{where}: score must be a number, got {raw!r}.") from None
    if not abs(value) <= MAX_SCORE_ABS:  # also NaN
        raise BeirFormatError(f"{where}: score must be a finite number, got {raw!r}.")
    return value


def _other_split_queries(folder: Path, test: Path) -> set[str]:
    """Query ids named by the folder's other qrels files (train, dev): queries of those splits are skipped."""
    names: set[str] = set()
    for path in sorted((folder / "qrels").glob("*")):
        if path == test or not path.is_file() or not path.name.endswith((".tsv", ".jsonl", ".jsonl.gz")):
            continue
        try:
            names.update(q for _, q, _, _ in _qrel_rows(path))
        except BeirFormatError:
            continue  # another split's file is not ours to validate
    return names


def load_beir(folder: str | os.PathLike, checksums: bool = True) -> BeirData:
    """Read and validate the evaluation set in `folder` (see the module docstring); raises `BeirFormatError`
    naming the file and line of the first problem. `checksums`: record each file's sha256 (as every task does)."""
    folder = resolve_folder(folder)
    corpus_path = _first(folder, ["corpus.jsonl", "corpus.jsonl.gz"])
    queries_path = _first(folder, ["queries.jsonl", "queries.jsonl.gz"])
    qrels_path = _first(folder, ["qrels/test.tsv", "qrels/test.jsonl", "qrels/test.jsonl.gz"])
    for name, path in (("corpus.jsonl", corpus_path), ("queries.jsonl", queries_path),
                       ("qrels/test.tsv", qrels_path)):
        if path is None:
            raise BeirFormatError(f"{folder / name}: file missing; a BEIR evaluation folder holds corpus.jsonl, "
                                  f"queries.jsonl and qrels/test.tsv (or MTEB's qrels/test.jsonl).")
    data = BeirData(folder, "beir" if qrels_path.suffix == ".tsv" else "mteb", [])
    docs = _read_corpus(corpus_path, data)
    queries, query_lines = _read_queries(queries_path, data)
    relevant: list[dict[int, float]] = [{} for _ in data.query_ids]
    named = [False] * len(data.query_ids)
    judged = 0
    for n, query_id, doc_id, raw in _qrel_rows(qrels_path):
        where = f"{qrels_path}:{n}"
        score = _score(raw, where)
        q = queries.get(query_id)
        if q is None:
            raise BeirFormatError(f"{where}: query-id {query_id!r} is not in {queries_path.name}.")
        d = docs.get(doc_id)
        if d is None:
            raise BeirFormatError(f"{where}: corpus-id {doc_id!r} is not in {corpus_path.name}.")
        named[q] = True
        judged += 1
        if score > 0:
            if d in relevant[q] and relevant[q][d] != score:
                raise BeirFormatError(f"{where}: the pair ({query_id!r}, {doc_id!r}) is judged twice with "
                                      f"different scores ({relevant[q][d]:g} and {score:g}).")
            relevant[q][d] = score
    if judged == 0:
        raise BeirFormatError(f"{qrels_path}:1: holds no judged pair.")
    other = _other_split_queries(folder, qrels_path) if not all(named) else set()
    keep, skipped = [], 0
    for q, query_id in enumerate(data.query_ids):
        if relevant[q]:
            keep.append(q)
        elif not named[q] and query_id in other:
            skipped += 1  # a query of another split (BEIR / MTEB folders list every split's queries)
        else:
            why = "is judged only with score <= 0" if named[q] else "has no row"
            raise BeirFormatError(f"{queries_path}:{query_lines[q]}: query {query_id!r} has no relevant item: it "
                                  f"{why} in {qrels_path.relative_to(folder)} (relevant: score > 0).")
    if skipped:
        for name in ("query_ids", "query_langs", "query_texts", "query_groups"):
            values = getattr(data, name)
            setattr(data, name, [values[q] for q in keep])
        relevant = [relevant[q] for q in keep]
    data.relevant = [list(r) for r in relevant]
    data.grades = [list(r.values()) for r in relevant]
    data.languages = sorted(set(data.query_langs) | set(data.doc_langs))
    data.notes = {"layout": data.layout, "queries_of_other_splits": skipped,
                  "languages_without_corpus": sorted(set(data.query_langs) - set(data.doc_langs)),
                  "graded": any(g != 1 for grades in data.grades for g in grades)}
    data.files = {str(p): sha256_file(p) if checksums else "" for p in (corpus_path, queries_path, qrels_path)}
    return data


# ---------------------------------------------------------------------------------------------- writing


def write_beir_files(folder: str | os.PathLike, queries: list[dict], corpus: list[dict],
                     qrels: list[tuple[str, str, int]]) -> Path:
    """Write a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) whole or not at all: the files go to a
    hidden sibling folder first, which then takes `folder`'s place (an existing `folder` is refused)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise BeirFormatError(f"{folder}: exists and is not empty; choose a new folder.")
    bad = next((i for q, c, _ in qrels for i in (str(q), str(c)) if any(ch in i for ch in "\t\r\n")), None)
    if bad is not None:
        raise BeirFormatError(f"Cannot write the id {bad!r} to qrels/test.tsv: it holds a tab or a line break.")
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "qrels").mkdir(parents=True)
        for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        with open(tmp / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
            f.write("\t".join(QRELS_HEADER) + "\n")
            f.writelines(f"{q}\t{c}\t{s}\n" for q, c, s in qrels)
        if folder.exists():
            folder.rmdir()
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
