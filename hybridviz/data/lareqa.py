"""XQuAD-R and MLQA-R as released by LAReQA (SQuAD JSON plus `sentences` / `sentence_breaks` per paragraph).

Candidates are every sentence of every paragraph of a language file (no de-duplication, as in LAReQA: this
reproduces the candidate counts of the LAReQA README). A question's relevant sentence in a language is the one
whose character span contains the answer start; parallel questions share the question id across languages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hybridviz.data.paths import find_file, sha256_file
from hybridviz.errors import DataFormatError, UnknownName

LAREQA_URL = "https://github.com/google-research-datasets/lareqa"

BENCHMARKS = {
    "xquad-r": {
        "folder": "xquad-r",
        "languages": ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"],
        "licence": "CC BY-SA 4.0",
        "source": f"{LAREQA_URL} (folder xquad-r/), or `python -m hybridviz fetch xquad-r`",
    },
    "mlqa-r": {
        "folder": "mlqa-r",
        "languages": ["ar", "de", "en", "es", "hi", "vi", "zh"],
        "licence": "CC BY-NC 4.0",
        "source": f"{LAREQA_URL} at commit 354d67d (folder mlqa-r/, later removed upstream)",
    },
}


@dataclass(frozen=True)
class Question:
    id: str  # "<lang>:<question id>"
    lang: str
    text: str
    group: str  # the question id shared by parallel questions


@dataclass(frozen=True)
class Sentence:
    id: str  # "<lang>:<paragraph index>:<sentence index>"
    lang: str
    text: str
    groups: frozenset[str]  # ids of the questions whose answer starts in this sentence


@dataclass
class LareqaData:
    name: str
    languages: list[str]
    questions: list[Question] = field(default_factory=list)
    sentences: list[Sentence] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256


def check_languages(requested: list[str] | None, available: list[str], what: str) -> list[str]:
    if not requested:
        return list(available)
    unknown = [lang for lang in requested if lang not in available]
    if unknown:
        raise UnknownName(f"Unknown language code(s) {', '.join(unknown)} for {what}; "
                          f"available: {', '.join(available)}.")
    return list(dict.fromkeys(requested))


def _parse_language_file(path, lang: str, data: LareqaData) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc}).") from None
    try:
        for p_index, paragraph in enumerate(p for article in doc["data"] for p in article["paragraphs"]):
            sentences, breaks = paragraph["sentences"], paragraph["sentence_breaks"]
            if len(sentences) != len(breaks):
                raise DataFormatError(f"{path}: paragraph {p_index} has {len(sentences)} sentences "
                                      f"but {len(breaks)} sentence breaks.")
            groups: list[set[str]] = [set() for _ in sentences]
            for qa in paragraph["qas"]:
                start = int(qa["answers"][0]["answer_start"])
                hit = next((i for i, (b, e) in enumerate(breaks) if b <= start < e), None)
                if hit is None:
                    raise DataFormatError(f"{path}: answer start {start} of question {qa['id']} "
                                          f"lies in no sentence.")
                groups[hit].add(str(qa["id"]))
                data.questions.append(Question(f"{lang}:{qa['id']}", lang, str(qa["question"]), str(qa["id"])))
            for s_index, text in enumerate(sentences):
                data.sentences.append(Sentence(f"{lang}:{p_index}:{s_index}", lang, str(text),
                                               frozenset(groups[s_index])))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"{path} is not in the LAReQA/SQuAD format (problem: {exc!r}).") from None


def load_lareqa(name: str, languages: list[str] | None = None) -> LareqaData:
    """Load XQuAD-R or MLQA-R for the given languages (all of the benchmark's languages by default)."""
    if name not in BENCHMARKS:
        raise UnknownName(f"Unknown LAReQA benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}.")
    spec = BENCHMARKS[name]
    langs = check_languages(languages, spec["languages"], name)
    data = LareqaData(name, langs)
    for lang in langs:
        path = find_file(f"{spec['folder']}/{lang}.json", spec["source"])
        _parse_language_file(path, lang, data)
        data.files[str(path)] = sha256_file(path)
    return data
