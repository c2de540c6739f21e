"""MKQA: the official release (`mkqa.jsonl.gz`) and the ID-aligned subset shipped in `mkqa_subset_merged.jsonl.gz`.

Both formats are read into the same `MkqaExample`. The official rows carry `query`, `queries` (26 languages)
and `answers` as `{type, text, aliases, entity?}` objects; the merged subset carries plain answer strings and
only 17 languages (see the data's SOURCE.md). Languages and counts are read from the file, never assumed.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hybridviz.data.paths import find_file, sha256_file
from hybridviz.errors import DataFileMissing, DataFormatError

MKQA_URL = "https://github.com/apple/ml-mkqa/raw/main/dataset/mkqa.jsonl.gz"
MKQA_SOURCE = f"{MKQA_URL} (`python -m hybridviz fetch mkqa`)"
SUBSET_FILE = "mkqa/mkqa_subset_merged.jsonl.gz"
OFFICIAL_FILE = "mkqa/mkqa.jsonl.gz"
BINARY_ANSWERS = frozenset({"yes", "no"})
# Answer types of the official release that carry no retrievable answer string.
NON_SHORT_TYPES = frozenset({"unanswerable", "long_answer"})


@dataclass(frozen=True)
class MkqaExample:
    example_id: str
    queries: dict[str, str]
    answers: dict[str, list[str]]  # language -> answer strings (only languages where answers are known)
    answer_types: dict[str, list[str]] = field(default_factory=dict)  # official format only
    # every answer's `text` as written, None included (official: unanswerable / long_answer rows have none):
    # the MTEB protocol needs them unstripped and unfiltered
    raw_texts: dict[str, list] = field(default_factory=dict)

    @property
    def is_binary(self) -> bool:
        """Yes/no questions: their answers cannot be retrieved as strings."""
        if any(t == "binary" for types in self.answer_types.values() for t in types):
            return True
        return any(answers and set(a.strip().lower() for a in answers) <= BINARY_ANSWERS
                   for answers in self.answers.values())


@dataclass
class MkqaData:
    examples: list[MkqaExample]
    source_format: str  # "official" or "subset"
    files: dict[str, str]

    def query_counts(self) -> Counter:
        return Counter(lang for ex in self.examples for lang in ex.queries)

    def answer_counts(self) -> Counter:
        return Counter(lang for ex in self.examples for lang in ex.answers)

    @property
    def languages(self) -> list[str]:
        return sorted(self.query_counts())

    def fully_covered_languages(self) -> list[str]:
        """Languages with a query for every example (12 on the shipped subset, 26 on the official file)."""
        counts = self.query_counts()
        return sorted(lang for lang, n in counts.items() if n == len(self.examples))


def _parse_row(row: dict, line_no: int, path: Path) -> MkqaExample:
    where = f"{path}, line {line_no}"
    if not isinstance(row, dict) or "example_id" not in row or not isinstance(row.get("queries"), dict):
        raise DataFormatError(f"{where}: expected an object with 'example_id' and 'queries'.")
    queries = {str(k): v for k, v in row["queries"].items() if isinstance(v, str) and v.strip()}
    answers: dict[str, list[str]] = {}
    types: dict[str, list[str]] = {}
    raw: dict[str, list] = {}
    raw_answers = row.get("answers", {})
    if not isinstance(raw_answers, dict):
        raise DataFormatError(f"{where}: 'answers' must map languages to lists.")
    for lang, items in raw_answers.items():
        if not isinstance(items, list):
            raise DataFormatError(f"{where}: answers for {lang!r} must be a list.")
        texts, kinds = [], []
        raw[str(lang)] = [item if isinstance(item, str) else item.get("text") if isinstance(item, dict) else None
                          for item in items]
        for item in items:
            if isinstance(item, str):  # shipped subset: plain strings
                texts.append(item)
            elif isinstance(item, dict):  # official release: {type, text, aliases, entity?}
                kinds.append(str(item.get("type")))
                if item.get("type") not in NON_SHORT_TYPES and item.get("text"):
                    texts.append(str(item["text"]))
            else:
                raise DataFormatError(f"{where}: an answer for {lang!r} is neither a string nor an object.")
        texts = [t for t in dict.fromkeys(t.strip() for t in texts) if t]
        if texts:
            answers[str(lang)] = texts
        if kinds:
            types[str(lang)] = kinds
    return MkqaExample(str(row["example_id"]), queries, answers, types, raw)


def read_mkqa_file(path: str | Path) -> MkqaData:
    """Read either MKQA format from a (gzipped) JSON-lines file; bad lines are reported with their number."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    examples: list[MkqaExample] = []
    official = False
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(f"{path}, line {line_no}: malformed JSON ({exc.msg}).") from None
                official = official or (isinstance(row, dict) and "query" in row)
                examples.append(_parse_row(row, line_no, path))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} cannot be read as gzipped JSON lines ({exc}).") from None
    if not examples:
        raise DataFormatError(f"{path} holds no MKQA examples.")
    seen = Counter(ex.example_id for ex in examples)
    dupes = [i for i, n in seen.items() if n > 1]
    if dupes:
        raise DataFormatError(f"{path}: example_id {dupes[0]} occurs {seen[dupes[0]]} times.")
    return MkqaData(examples, "official" if official else "subset", {str(path): sha256_file(path)})


def load_mkqa() -> MkqaData:
    """The official release when it has been fetched into the data directory, else the shipped subset."""
    try:
        path = find_file(OFFICIAL_FILE, MKQA_SOURCE)
    except DataFileMissing:
        path = find_file(SUBSET_FILE, MKQA_SOURCE + "; the offline subset ships in the project's shared data")
    return read_mkqa_file(path)
