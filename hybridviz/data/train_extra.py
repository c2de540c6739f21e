"""Extra training sources (`train-extra/` in the data directory; formats and licences in its SOURCE.md): small
multilingual question-answer sets of other domains, read as parallel items for a multi-source training mix.

Each loader yields `ParallelItem`s: one parallel set (`group`) with its question in some languages and its answer
in some (not necessarily the same) languages; the training pairs are every (question_i, answer_j) of an item
(training/data.py). Training only: the zero-shot guard checks every pair against the evaluation data.

- mintaka: Mintaka v1.0 dev, 9-way parallel questions (en + ar de es fr hi it ja pt) with English entity answers
  (`answer.mention`); yes/no questions are left out (one "Yes" answering hundreds of questions is no positive).
- bipar: BiPaR valid + test, en-zh parallel novel QA; the answer is the context sentence holding `answer_start`.
- xlinghealth: XLingHealth MedicationQA + LiveQA, questions and answer passages in en, es, zh, hi (row-aligned).
- xor-tydi: XOR-TyDi train + dev questions in ar bn fi ja ko ru te with short English answers, and each question's
  line-aligned English translation (`{lang}-en/{lang,en}.txt`): the question in both languages, the answer in en;
  yes/no answers are left out.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from hybridviz.data.paths import find_file, sha256_file
from hybridviz.errors import DataFormatError, UnknownName

SOURCE = "../shared/data/train-extra (see its SOURCE.md)"
XOR_LANGUAGES = ("ar", "bn", "fi", "ja", "ko", "ru", "te")
# answers shared by hundreds of questions: in a batch they would be each other's positives, so no positive at all
NO_POSITIVE = frozenset({"yes", "no", "unknown"})
XLINGHEALTH_COLUMNS = {"en": ("question", "answer"), "hi": ("translated_question_Hindi", "translated_answer_Hindi"),
                       "zh": ("translated_question_Chinese", "translated_answer_Chinese"),
                       "es": ("translated_question_Spanish", "translated_answer_Spanish")}


@dataclass
class ParallelItem:
    group: str
    questions: dict[str, str]  # language -> question
    answers: dict[str, str]  # language -> answer text


@dataclass
class ExtraSource:
    name: str
    items: list[ParallelItem]
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256

    @property
    def languages(self) -> list[str]:
        return sorted({x for item in self.items for x in (*item.questions, *item.answers)})


def _file(relative: str) -> Path:
    return find_file(f"train-extra/{relative}", SOURCE)


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc}).") from None


def load_mintaka() -> ExtraSource:
    path = _file("mintaka/mintaka_dev_v1.0.json")
    items = []
    for row in _json(path):
        answer = row.get("answer") or {}
        mention = str(answer.get("mention") or "").strip()
        if answer.get("answerType") == "boolean" or not mention or mention.lower() in NO_POSITIVE:
            continue
        questions = {"en": row["question"], **{k: v for k, v in (row.get("translations") or {}).items() if v}}
        items.append(ParallelItem(f"mintaka:{row['id']}", questions, {"en": mention}))
    return ExtraSource("mintaka", items, {str(path): sha256_file(path)})


_SENTENCE_END = {"en": re.compile(r"(?<=[.!?])[\"'”’)]*\s+"), "zh": re.compile(r"(?<=[。！？!?])[”’」』）)]*")}


def sentence_at(context: str, start: int, lang: str) -> str:
    """The sentence of `context` that holds character `start` (sentence ends: . ! ? for en, 。！？ for zh)."""
    begin = 0
    for match in _SENTENCE_END[lang].finditer(context):
        if match.end() > start:
            return context[begin:match.end()].strip()
        begin = match.end()
    return context[begin:].strip()


def load_bipar() -> ExtraSource:
    questions: dict[str, dict[str, str]] = {}
    answers: dict[str, dict[str, str]] = {}
    files = {}
    for split in ("valid", "test"):
        for lang in ("en", "zh"):
            path = _file(f"bipar/Monolingual_{lang.upper()}_{split}.json")
            files[str(path)] = sha256_file(path)
            for article in _json(path)["data"]:
                for paragraph in article["paragraphs"]:
                    for qa in paragraph["qas"]:
                        if not qa.get("answers"):
                            continue
                        group = "bipar:" + re.sub(r"_(EN|ZH)$", "", qa["id"])
                        questions.setdefault(group, {})[lang] = qa["question"]
                        start = int(qa["answers"][0]["answer_start"])
                        answers.setdefault(group, {})[lang] = sentence_at(paragraph["context"], start, lang)
    items = [ParallelItem(g, questions[g], answers[g]) for g in sorted(questions) if set(questions[g]) == {"en", "zh"}
             and set(answers.get(g, {})) == {"en", "zh"}]
    return ExtraSource("bipar", items, files)


def load_xlinghealth() -> ExtraSource:
    csv.field_size_limit(1 << 26)  # answer passages exceed csv's default 128 kB field limit
    items, files = [], {}
    for name in ("medicationqa", "liveqa"):
        path = _file(f"xlinghealth/{name}_benchmark.tsv")
        files[str(path)] = sha256_file(path)
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            missing = [c for cols in XLINGHEALTH_COLUMNS.values() for c in cols if c not in (reader.fieldnames or [])]
            if missing:
                raise DataFormatError(f"{path} lacks the column(s) {', '.join(missing)}.")
            for i, row in enumerate(reader):
                q = {lang: row[qc].strip() for lang, (qc, _) in XLINGHEALTH_COLUMNS.items() if (row[qc] or "").strip()}
                a = {lang: row[ac].strip() for lang, (_, ac) in XLINGHEALTH_COLUMNS.items() if (row[ac] or "").strip()}
                if q and a:
                    items.append(ParallelItem(f"xlinghealth:{name}:{i}", q, a))
    return ExtraSource("xlinghealth", items, files)


def load_xor_tydi() -> ExtraSource:
    files, english = {}, {}
    for lang in XOR_LANGUAGES:
        native, en = _file(f"xor-tydi/{lang}-en/{lang}.txt"), _file(f"xor-tydi/{lang}-en/en.txt")
        files |= {str(native): sha256_file(native), str(en): sha256_file(en)}
        a = native.read_text(encoding="utf-8").splitlines()
        b = en.read_text(encoding="utf-8").splitlines()
        if len(a) != len(b):
            raise DataFormatError(f"{native} and {en} must be line-aligned ({len(a)} vs {len(b)} lines).")
        english |= {(lang, x.strip()): y.strip() for x, y in zip(a, b) if x.strip() and y.strip()}
    items = []
    for name in ("xor_train_retrieve_eng_span.jsonl", "xor_dev_retrieve_eng_span_v1_1.jsonl"):
        path = _file(f"xor-tydi/{name}")
        files[str(path)] = sha256_file(path)
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}, line {line_no}: malformed JSON ({exc.msg}).") from None
            answer = next((str(x).strip() for x in row.get("answers") or [] if str(x).strip()), None)
            lang = str(row.get("lang", "")).strip()  # 2,574 rows say " ar"
            if lang not in XOR_LANGUAGES or answer is None or answer.lower() in NO_POSITIVE:
                continue
            questions = {lang: row["question"].strip()}
            translation = english.get((lang, row["question"].strip()))
            if translation:
                questions["en"] = translation
            items.append(ParallelItem(f"xor-tydi:{row['id']}", questions, {"en": answer}))
    return ExtraSource("xor-tydi", items, files)


LOADERS = {"mintaka": load_mintaka, "bipar": load_bipar, "xlinghealth": load_xlinghealth, "xor-tydi": load_xor_tydi}


def load_extra(name: str) -> ExtraSource:
    if name not in LOADERS:
        raise UnknownName(f"Unknown training source {name!r}; choose one of {', '.join(LOADERS)}.")
    return LOADERS[name]()
