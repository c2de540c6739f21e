"""Loaders on the real benchmark files, and their behaviour on bad input."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from hybridviz.data import load_lareqa, load_mkqa, read_mkqa_file
from hybridviz.data import paths
from hybridviz.errors import DataFileMissing, DataFormatError, UnknownName

# Counts from the LAReQA README (questions, candidates per language).
XQUAD_R_CANDIDATES = {"ar": 1222, "de": 1276, "el": 1234, "en": 1180, "es": 1215, "hi": 1244, "ru": 1219,
                      "th": 852, "tr": 1167, "vi": 1209, "zh": 1196}
MLQA_R = {"ar": (517, 2545), "de": (512, 2362), "en": (1148, 6264), "es": (500, 1787), "hi": (507, 2426),
          "vi": (511, 2828), "zh": (504, 2322)}


def test_xquad_r_reproduces_lareqa_counts(data_root):
    d = load_lareqa("xquad-r")
    assert Counter(q.lang for q in d.questions) == {lang: 1190 for lang in XQUAD_R_CANDIDATES}
    assert Counter(s.lang for s in d.sentences) == XQUAD_R_CANDIDATES
    # every question has exactly one answer sentence per language, and parallel questions share the id
    groups = Counter(g for s in d.sentences for g in s.groups)
    assert set(groups.values()) == {11}
    assert len(groups) == 1190


def test_mlqa_r_reproduces_lareqa_counts(data_root):
    d = load_lareqa("mlqa-r")
    assert {lang: (sum(q.lang == lang for q in d.questions), sum(s.lang == lang for s in d.sentences))
            for lang in d.languages} == MLQA_R
    ways = Counter(Counter(q.group for q in d.questions).values())
    assert set(ways) <= {2, 3, 4}, "MLQA questions are parallel in 2-4 languages"


def test_relevant_sentence_contains_answer(data_root):
    d = load_lareqa("xquad-r", ["de"])
    raw = json.loads((data_root / "xquad-r" / "de.json").read_text(encoding="utf-8"))
    qa = raw["data"][0]["paragraphs"][0]["qas"][0]
    sentence = next(s for s in d.sentences if qa["id"] in s.groups)
    assert qa["answers"][0]["text"] in sentence.text


def test_mkqa_subset_counts_are_read_not_assumed(data_root):
    m = load_mkqa()
    assert m.source_format == "subset"
    assert len(m.examples) == 6758
    assert m.fully_covered_languages() == ["ar", "en", "es", "fi", "ja", "km", "ko", "ms", "ru", "sv", "tr",
                                           "zh_cn"]
    q = m.query_counts()
    assert len(q) == 17 and q["de"] == 1000 and q["km"] == 6758
    a = m.answer_counts()
    assert a["en"] == 2504 and a["es"] == 1758 and a["pl"] == 1000
    assert sum(ex.is_binary for ex in m.examples) > 0


def test_mkqa_official_format(data_root):
    m = read_mkqa_file(data_root / "mkqa" / "official_sample" / "test_mkqa.jsonl.gz")
    assert m.source_format == "official"
    assert len(m.examples) == 6 and len(m.languages) == 26
    by_id = {ex.example_id: ex for ex in m.examples}
    assert by_id["36228854473990432"].answers["en"] == ["2017", "2017-05-18"]
    assert by_id["7631360939705650347"].answers["en"] == ["Ridley Scott"]
    # unanswerable / long_answer rows keep their types but no answer strings
    assert by_id["2961317153244610375"].answer_types["en"] == ["unanswerable"]
    assert "en" not in by_id["2961317153244610375"].answers


def test_data_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    assert paths.data_dirs() == [tmp_path]
    with pytest.raises(DataFileMissing) as exc:
        load_lareqa("xquad-r", ["en"])
    msg = str(exc.value)
    assert "xquad-r/en.json" in msg and str(tmp_path) in msg and "github.com/google-research-datasets/lareqa" in msg


def test_unknown_language():
    with pytest.raises(UnknownName, match="xx"):
        load_lareqa("xquad-r", ["en", "xx"])


def _write_gz(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


@pytest.mark.parametrize("lines, message", [
    (['{"example_id": "1", "queries": {"en": "a"}, "answers": {}}', '{"example_id": "2", "queries": '],
     "line 2: malformed JSON"),
    (['{"example_id": "1", "queries": "not a dict"}'], "line 1: expected an object"),
    (['{"example_id": "1", "queries": {"en": "a"}, "answers": {"en": "x"}}'], "must be a list"),
    (['{"example_id": "1", "queries": {"en": "a"}, "answers": {"en": [3]}}'], "neither a string"),
    ([""], "holds no MKQA examples"),
    (['{"example_id": "1", "queries": {"en": "a"}}', '{"example_id": "1", "queries": {"en": "b"}}'],
     "occurs 2 times"),
])
def test_malformed_mkqa_lines(tmp_path, lines, message):
    path = tmp_path / "m.jsonl.gz"
    _write_gz(path, lines)
    with pytest.raises(DataFormatError, match=message):
        read_mkqa_file(path)


def test_truncated_gzip(tmp_path, data_root):
    blob = (data_root / "mkqa" / "official_sample" / "test_mkqa.jsonl.gz").read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFormatError, match="cannot be read"):
        read_mkqa_file(path)


def test_malformed_lareqa_file(tmp_path, monkeypatch):
    (tmp_path / "xquad-r").mkdir()
    (tmp_path / "xquad-r" / "en.json").write_text('{"data": [{"paragraphs": [{"qas": []}]}]}')
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    with pytest.raises(DataFormatError, match="not in the LAReQA/SQuAD format"):
        load_lareqa("xquad-r", ["en"])
    (tmp_path / "xquad-r" / "en.json").write_text('{"data": [')
    with pytest.raises(DataFormatError, match="not valid JSON"):
        load_lareqa("xquad-r", ["en"])


@pytest.mark.slow
def test_data_command_reports_per_language_counts(data_root):
    from conftest import run_cli

    result = run_cli("data")
    assert result.returncode == 0, result.stderr
    rows = {r["benchmark"]: r for r in json.loads(result.stdout.split("\n", 1)[1])}
    assert rows["xquad-r"]["per_language"]["th"] == {"questions": 1190, "candidates": 852}
    assert rows["mkqa (subset)"]["per_language"]["de"] == {"queries": 1000, "answer_lists": 1000}
    assert rows["mkqa (subset)"]["examples"] == 6758


def test_sentence_at_finds_the_answer_sentence():
    from hybridviz.data.train_extra import sentence_at

    en = "He came home. \"Where were you?\" she asked! It was late... Nobody answered"
    assert sentence_at(en, en.index("Where"), "en") == "\"Where were you?\""  # a closing quote ends it too
    assert sentence_at(en, en.index("asked"), "en") == "she asked!"
    assert sentence_at(en, 0, "en") == "He came home."
    assert sentence_at(en, en.index("Nobody"), "en") == "Nobody answered"
    zh = "我住在西卵。房子每月八十美元！“你好吗？”他问"
    assert sentence_at(zh, zh.index("八十"), "zh") == "房子每月八十美元！"
    assert sentence_at(zh, zh.index("他问"), "zh") == "他问"


@pytest.mark.slow
def test_extra_training_sources_read_as_parallel_items(data_root):
    """Each train-extra source as SOURCE.md describes it: languages, links, answers; pairs are every
    (question_i, answer_j) within the chosen languages; none overlaps the evaluation data (the zero-shot guard)."""
    from hybridviz.data.train_extra import NO_POSITIVE, XOR_LANGUAGES, load_extra
    from hybridviz.training.data import check_zero_shot, extra_pairs

    mintaka = load_extra("mintaka")
    assert 1500 < len(mintaka.items) < 2000  # 2,000 less the yes/no questions
    assert all(set(i.questions) == {"en", "ar", "de", "es", "fr", "hi", "it", "ja", "pt"} and set(i.answers) == {"en"}
               for i in mintaka.items)
    bipar = load_extra("bipar")
    assert len(bipar.items) == 3000 and all(set(i.questions) == set(i.answers) == {"en", "zh"} for i in bipar.items)
    health = load_extra("xlinghealth")
    assert len(health.items) == 936 and set(health.languages) == {"en", "es", "hi", "zh"}
    xor = load_extra("xor-tydi")
    assert set(xor.languages) == {"en", *XOR_LANGUAGES} and all(set(i.answers) == {"en"} for i in xor.items)
    linked = sum("en" in i.questions for i in xor.items)
    assert linked / len(xor.items) > 0.8  # questions found in the line-aligned translations
    for source in (mintaka, xor):
        assert not {a.lower() for i in source.items for a in i.answers.values()} & NO_POSITIVE

    pairs = extra_pairs("mintaka", ["en", "de", "ja"])
    # de->en, en->en, ja->en per item, less the items whose answer is also an MKQA answer ("Lady Gaga")
    assert 0 < pairs.excluded_groups < len(mintaka.items) / 2
    assert len(pairs) == 3 * (len(mintaka.items) - pairs.excluded_groups)
    assert set(zip(pairs.query_lang, pairs.passage_lang)) == {("de", "en"), ("en", "en"), ("ja", "en")}
    assert pairs.counts()["excluded_groups"] == pairs.excluded_groups
    for name in ("mintaka", "bipar", "xlinghealth", "xor-tydi"):
        check_zero_shot(extra_pairs(name))  # what remains never overlaps the evaluation data
