"""mkqa-nq (BGE-M3's protocol) on a small BEIR corpus the test builds: answer containment rules, the corpus reader,
resumable and rank-sharded encoding, and Recall@k against a brute-force ranking."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest

from hybridviz import mkqa_nq
from hybridviz.data.mkqa import load_mkqa
from hybridviz.data.nq import corpus_path, has_answer, normalise_punctuation, passage_text, read_corpus
from hybridviz.errors import DataFileMissing, DataFormatError


@pytest.mark.parametrize("answers, passage, expected", [
    (["Paris"], "the capital is paris.", True),  # case
    (["Paris"], "a parisian café", False),  # a partial token never matches
    (["New York"], "new  york city", True),  # whitespace between tokens does not matter
    (["York New"], "new york", False),  # order does
    (["Café"], unicodedata.normalize("NFD", "le café du coin"), True),  # composed vs decomposed accents
    (["Cafe"], "le café du coin", False),  # an accent is part of the token
    (["U.S."], "the u.s. army", True),  # punctuation is a token of its own
    (["U.S."], "the us army", False),
    (["1,000"], "about 1,000 men", True),
    (["1,000"], "about 1000 men", False),
    (["", "Rome"], "rome", True),  # an empty answer never matches, another may
    ([""], "anything", False),
])
def test_answer_containment(answers, passage, expected):
    assert has_answer(answers, passage) is expected


def test_passages_are_normalised_like_bge_m3():
    assert normalise_punctuation("rock\u2013paper \u201cx\u201d it\u2019s a\u2026b 1\u20442 co\u00adop") == \
        "rock-paper \"x\" it's a...b 1/2 coop"
    text = passage_text("Title", "Rock\u2013Paper")
    assert text == "title\nrock-paper"
    assert has_answer(["rock-paper"], text)  # the passage's en dash was unified, so the hyphenated answer matches


def _corpus(tmp_path, rows):
    path = tmp_path / "nq" / "corpus.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_corpus_reader_and_its_errors(tmp_path, monkeypatch):
    path = _corpus(tmp_path, [{"_id": "d1", "title": "T", "text": "Body"}, {"_id": 2, "text": "no title"}])
    assert [(p.pid, p.text) for p in read_corpus(path)] == [("d1", "t\nbody"), ("2", "\nno title")]
    assert corpus_path(path.parent) == path  # a BEIR folder is enough
    with open(path, "a") as f:
        f.write('{"_id": "d3", "title": "x"}\n')
    with pytest.raises(DataFormatError, match="line 3"):
        list(read_corpus(path))
    monkeypatch.delenv("HYBRIDVIZ_NQ_CORPUS", raising=False)
    with pytest.raises(DataFileMissing, match="BEIR"):
        corpus_path(None)


@pytest.fixture
def planted(tmp_path, monkeypatch, data_root):
    """A corpus with one passage holding each chosen question's English answer, among distractors."""
    monkeypatch.setattr(mkqa_nq, "NQ_DIR", tmp_path / "shards")
    monkeypatch.setattr(mkqa_nq, "SHARD_SIZE", 4)
    qs = [q for q in mkqa_nq.questions(load_mkqa(), ["en", "de"]) if q["lang"] == "en"][:3]
    rows = [{"_id": f"gold{i}", "title": "", "text": f"It is {q['answers'][0]}, they say."} for i, q in enumerate(qs)]
    rows += [{"_id": f"noise{i}", "title": "Noise", "text": f"unrelated passage number {i}"} for i in range(7)]
    return _corpus(tmp_path, rows), qs


def test_questions_follow_the_protocol(data_root):
    data = load_mkqa()
    qs = mkqa_nq.questions(data, ["en"])
    kept = {q["example_id"] for q in qs}
    for ex in data.examples:
        if ex.example_id in kept:
            assert not ex.is_binary and ex.answers.get("en")
    assert all(q["answers"] == next(e for e in data.examples if e.example_id == q["example_id"]).answers["en"]
               for q in qs[:50])
    assert any(ex.is_binary for ex in data.examples) and not any(
        ex.is_binary for ex in data.examples if ex.example_id in kept)


def test_hit_rate_matches_a_brute_force_ranking(planted, tiny, tmp_path):
    from hybridviz.results.store import read_metrics

    path, _ = planted
    mkqa_nq.evaluate_mkqa_nq("tiny", path, ["en", "de"], limit_queries=3, encoder=tiny, out_dir=tmp_path / "nq")
    report = read_metrics(tmp_path / "nq")  # the shared schema, written through the results store
    assert report["task"] == "mkqa-nq" and report["languages"] == ["de", "en"]
    per_language = report["settings"][mkqa_nq.SETTING]["per_language"]
    assert report["corpus"]["passages"] == 10 and report["cost"]["passages_encoded_now"] == 10
    passages = list(read_corpus(path))
    P = tiny.encode([p.text for p in passages], "passage")
    for lang in ("en", "de"):
        qs = mkqa_nq.questions(load_mkqa(), [lang])[:3]
        Q = tiny.encode([q["text"] for q in qs], "query")
        first = []
        for q, row in zip(qs, Q @ P.T):
            order = np.argsort(-row, kind="stable")
            first.append(next((r for r, j in enumerate(order, 1) if has_answer(q["answers"], passages[j].text)),
                              None))
        for k in mkqa_nq.KS:
            assert per_language[lang][f"hit@{k}"] == pytest.approx(
                np.mean([h is not None and h <= k for h in first]))
            assert report["matrices"][f"hit@{k}"]["values"][report["languages"].index(lang)] == [
                per_language[lang][f"hit@{k}"]]
    # every question's gold passage is among the 10: hit@20 over a 10-passage corpus is 1 for English
    assert per_language["en"]["hit@20"] == 1.0
    assert report["settings"][mkqa_nq.SETTING]["macro"]["hit@20"] == pytest.approx(
        np.mean([v["hit@20"] for v in per_language.values()]))


def test_encoding_resumes_and_shards_across_ranks(planted, tiny):
    path, _ = planted
    folder, n0, _ = mkqa_nq.encode_corpus(tiny, path, rank=0, world=2)  # shards 0 and 2 of [4, 4, 2]
    assert n0 == 6 and sorted(f.name for f in folder.glob("shard-*.npz")) == ["shard-00000.npz", "shard-00002.npz"]
    with pytest.raises(RuntimeError, match="2 of 3 shards"):
        mkqa_nq.build_index(folder)
    _, n1, _ = mkqa_nq.encode_corpus(tiny, path, rank=1, world=2)
    assert n1 == 4
    (folder / "shard-00002.npz").unlink()  # an interrupted run: only the missing shard is redone
    _, again, _ = mkqa_nq.encode_corpus(tiny, path)
    assert again == 2
    index, ids = mkqa_nq.build_index(folder)
    assert index.ntotal == 10 and ids[:3] == ["gold0", "gold1", "gold2"]
    for kind in ("hnsw", "ivf"):
        ann, _ = mkqa_nq.build_index(folder, kind)
        assert ann.ntotal == 10
