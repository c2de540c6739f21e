"""Queries, pools and relevance per setting, on real data and on small hand-made MKQA files."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import numpy as np
import pytest

from hybridviz.errors import EmptyPool, UnknownName
from hybridviz.tasks import build_corpus, make_slice, setting_applicable, slices


def test_xquad_r_settings(data_root):
    corpus = build_corpus("xquad-r")
    assert len(corpus.query_ids) == 13090 and len(corpus.cand_ids) == 13014
    mono = list(slices(corpus, "mono"))
    assert len(mono) == 11 and all(len(s.queries) == 1190 and all(len(r) == 1 for r in s.relevant) for s in mono)
    cross = list(slices(corpus, "cross"))
    assert len(cross) == 110
    (multi,) = list(slices(corpus, "multi"))
    assert len(multi.pool) == 13014 and len(multi.queries) == 13090
    assert {len(r) for r in multi.relevant} == {11}
    # the relevant set of a query is one sentence per language
    q = 0
    langs = sorted(corpus.cand_langs[multi.pool[j]] for j in multi.relevant[q])
    assert langs == corpus.languages


def test_mlqa_r_cross_drops_queries_without_parallel_answer(data_root):
    corpus = build_corpus("mlqa-r", ["en", "de"])
    s = make_slice(corpus, "cross", "en", "de")
    assert len(s.queries) == 512 and s.dropped == 1148 - 512


def test_limit_samples_groups_and_keeps_pool(data_root):
    corpus = build_corpus("xquad-r", ["en", "de"], limit=30, seed=1)
    assert len(set(corpus.query_groups)) == 30 and len(corpus.query_ids) == 60
    assert len(corpus.cand_ids) == 1180 + 1276
    assert build_corpus("xquad-r", ["en", "de"], limit=30, seed=1).query_ids == corpus.query_ids
    assert build_corpus("xquad-r", ["en", "de"], limit=30, seed=2).query_ids != corpus.query_ids


def _mkqa_file(tmp_path, rows):
    (tmp_path / "mkqa").mkdir(exist_ok=True)
    with gzip.open(tmp_path / "mkqa" / "mkqa_subset_merged.jsonl.gz", "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


ROWS = [
    {"example_id": "1", "queries": {"en": "who sang x", "de": "wer sang x", "ja": "x 誰"},
     "answers": {"en": ["Dave Edmunds"], "de": ["Dave Edmunds"], "ja": ["デイヴ"]}},
    {"example_id": "2", "queries": {"en": "when y", "de": "wann y", "ja": "y いつ"},
     "answers": {"en": ["2017", "2017-05-18"], "de": ["2017"], "ja": ["2017"]}},
    {"example_id": "3", "queries": {"en": "when z", "de": "wann z", "ja": "z いつ"},
     "answers": {"en": ["2017"], "de": ["2017"], "ja": ["2017年"]}},
    {"example_id": "4", "queries": {"en": "is it", "de": "ist es", "ja": "それは"},
     "answers": {"en": ["yes"], "de": ["yes"], "ja": ["yes"]}},
    {"example_id": "5", "queries": {"en": "only en", "de": "nur de"}, "answers": {"en": ["a"]}},
]


def test_mkqa_queries_relevance(tmp_path, monkeypatch):
    _mkqa_file(tmp_path, ROWS)
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    default = build_corpus("mkqa-queries")
    assert default.languages == ["de", "en"]  # ja lacks example 5: default = languages covering every example
    assert len(default.query_ids) == 10
    corpus = build_corpus("mkqa-queries", ["de", "en", "ja"])  # only examples complete in all three
    assert len(corpus.query_ids) == 12 and corpus.cand_ids == corpus.query_ids
    (multi,) = list(slices(corpus, "multi"))
    for q, rel in zip(multi.queries, multi.relevant):
        ids = [corpus.cand_ids[multi.pool[j]] for j in rel]
        assert corpus.query_ids[q] not in ids, "own query must not be relevant"
        assert sorted(i.split(":")[0] for i in ids) == sorted(set(corpus.languages) - {corpus.query_langs[q]})
    assert [corpus.cand_ids[multi.pool[o]] for o in multi.own] == [corpus.query_ids[q] for q in multi.queries]
    (cross,) = [s for s in slices(corpus, "cross") if (s.query_lang, s.pool_lang) == ("en", "de")]
    assert (cross.own == -1).all(), "the own query is not in another language's pool"
    assert setting_applicable(corpus, "mono").startswith("not applicable")
    assert build_corpus("mkqa-queries", ["en", "de"]).notes["examples"] == 5


def test_mkqa_answers_dedup_binary_and_shared_strings(tmp_path, monkeypatch):
    _mkqa_file(tmp_path, ROWS)
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    corpus = build_corpus("mkqa-answers", ["de", "en", "ja"])
    notes = corpus.notes
    assert notes["examples"] == 3 and notes["binary_examples_dropped"] == 1
    pool = Counter(zip(corpus.cand_langs, corpus.cand_texts))
    assert max(pool.values()) == 1, "one candidate per distinct (language, text)"
    assert len(pool) == 8
    groups = {(lang, t): g for lang, t, g in zip(corpus.cand_langs, corpus.cand_texts, corpus.cand_groups)}
    assert groups[("en", "2017")] == groups[("de", "2017")] == frozenset({"2", "3"})
    assert groups[("ja", "2017")] == frozenset({"2"}) and groups[("ja", "2017年")] == frozenset({"3"})
    assert notes["candidates_shared_by_several_examples"] == 2
    assert notes["candidates_whose_text_occurs_in_another_language"] == 5
    q = corpus.query_ids.index("en:2")
    rel_texts = sorted((corpus.cand_langs[c], corpus.cand_texts[c]) for c in corpus.relevant_candidates(q))
    assert rel_texts == [("de", "2017"), ("en", "2017"), ("en", "2017-05-18"), ("ja", "2017")]
    assert "yes" not in corpus.cand_texts


def test_unknown_task_and_empty_pool(tmp_path, monkeypatch):
    with pytest.raises(UnknownName, match="Unknown task"):
        build_corpus("mkqa-passages")
    _mkqa_file(tmp_path, [ROWS[3]])  # only a yes/no example: nothing to retrieve
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    with pytest.raises(EmptyPool, match="empty"):
        build_corpus("mkqa-answers", ["en"])


def test_slices_are_consistent_with_relevance(data_root):
    corpus = build_corpus("xquad-r", ["en", "th"], limit=20)
    for s in slices(corpus, "cross"):
        for q, rel in zip(s.queries, s.relevant):
            for j in rel:
                c = s.pool[j]
                assert corpus.query_groups[q] in corpus.cand_groups[c]
                assert corpus.cand_langs[c] == s.pool_lang
        assert np.all(np.diff(s.pool) > 0)


# ------------------------------------------------------------------------------------------- mkqa-mteb


def _mteb_corpus(monkeypatch, path_or_rows, tmp_path=None, languages=None):
    import gzip
    import json as _json

    from hybridviz.data import mkqa
    from hybridviz.tasks import build_corpus

    if isinstance(path_or_rows, list):
        path = tmp_path / "mkqa.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.writelines(_json.dumps(r) + "\n" for r in path_or_rows)
    else:
        path = path_or_rows
    data = mkqa.read_mkqa_file(path)
    monkeypatch.setattr(mkqa, "load_mkqa", lambda: data)
    return build_corpus("mkqa-mteb", languages)


def test_mkqa_mteb_on_the_official_sample_follows_each_published_rule(monkeypatch, data_root):
    """apple/ml-mkqa's 6-row test file in the official format: 3 rows answer, 1 is long_answer, 2 unanswerable."""
    corpus = _mteb_corpus(monkeypatch, data_root / "mkqa" / "official_sample" / "test_mkqa.jsonl.gz")
    assert len(corpus.languages) == 26 and corpus.notes["source_format"] == "official"
    en = corpus.notes["per_language"]["en"]
    # by hand: kept = "help me help you" (2017, 2017-05-18), "strongest man" (Hafþór), "gladiator" (Ridley Scott)
    assert en == {"rows_kept": 3, "rows_without_query": 0, "rows_with_an_answer_without_text": 3, "queries": 3,
                  "corpus": 4, "qrels": 4}
    en_docs = sorted(t for t, lang in zip(corpus.cand_texts, corpus.cand_langs) if lang == "en")
    assert en_docs == ["2017", "2017-05-18", "Hafþór Júlíus Björnsson", "Ridley Scott"]  # aliases ignored
    q = corpus.query_texts.index("when did help me help you come out")
    assert sorted(corpus.cand_texts[c] for c in corpus.relevant_candidates(q)) == ["2017", "2017-05-18"]
    assert all(corpus.cand_langs[c] == "en" for c in corpus.relevant_candidates(q))
    assert setting_applicable(corpus, "multi") and setting_applicable(corpus, "cross")  # monolingual only
    assert setting_applicable(corpus, "mono") is None


def test_mkqa_mteb_merges_identical_queries_shares_yes_no_and_skips_null_queries(monkeypatch, tmp_path, data_root):
    def row(i, query, answers, lang="en"):
        return {"example_id": i, "query": query, "queries": {lang: query},
                "answers": {lang: [{"type": t, "text": x, "aliases": ["alias-never-used"]} for t, x in answers]}}

    rows = [row(1, "is the sky blue", [("binary", "yes")]), row(2, "is grass green", [("binary", "yes")]),
            row(3, "who sang x", [("entity", "A")]), row(4, "who sang x", [("entity", "B")]),
            {"example_id": 5, "query": "q", "queries": {"en": None}, "answers": {"en": [{"type": "entity",
                                                                                         "text": "C"}]}},
            row(6, "partly unanswerable", [("entity", "D"), ("unanswerable", None)])]
    corpus = _mteb_corpus(monkeypatch, rows, tmp_path)
    notes = corpus.notes["per_language"]["en"]
    assert notes["rows_without_query"] == 1 and notes["rows_with_an_answer_without_text"] == 1
    assert sorted(corpus.cand_texts) == ["A", "B", "yes"]  # one "yes" document for both yes-questions
    assert corpus.query_texts.count("who sang x") == 1  # identical strings: one query...
    q = corpus.query_texts.index("who sang x")
    assert sorted(corpus.cand_texts[c] for c in corpus.relevant_candidates(q)) == ["A", "B"]  # ...both answers
    yes = corpus.cand_texts.index("yes")
    assert len(corpus.cand_groups[yes]) == 2


def test_mkqa_mteb_on_the_offline_subset_says_so_with_counts(data_root):
    from hybridviz.tasks import build_corpus

    corpus = build_corpus("mkqa-mteb", ["en", "de"])
    assert corpus.notes["offline_subset"] and corpus.notes["source_format"] == "subset"
    assert corpus.notes["per_language"]["en"]["rows_kept"] == 2504  # MIA dev 1,758 + NJUNLP 746
    assert corpus.notes["per_language"]["de"]["rows_kept"] == 1000
    assert set(corpus.query_langs) == set(corpus.cand_langs) == {"en", "de"}


def test_mkqa_mteb_evaluation_exports_in_mtebs_result_format(tmp_path, data_root):
    """The structure of MTEB's published MKQARetrieval.json: scores.train[] with main_score, hf_subset,
    languages; the values are ours (nDCG@10 of the per-language report)."""
    from hybridviz.evaluate import evaluate
    from hybridviz.mteb_export import export

    report = evaluate("tiny", "mkqa-mteb", languages=["en", "ja"], limit=50, out_dir=tmp_path)
    data = json.loads(export(tmp_path).read_text())
    assert set(data) >= {"dataset_revision", "task_name", "mteb_version", "scores", "evaluation_time"}
    assert data["task_name"] == "MKQARetrieval" and list(data["scores"]) == ["train"]
    rows = {r["hf_subset"]: r for r in data["scores"]["train"]}
    assert rows["ja"]["languages"] == ["jpn-Jpan"] and rows["en"]["languages"] == ["eng-Latn"]
    for lang in ("en", "ja"):
        ours = report["settings"]["mono"]["per_language"][lang]
        assert rows[lang]["main_score"] == rows[lang]["ndcg_at_10"] == round(ours["nDCG@10"], 5)
    assert data["dataset_revision"] == "hybridviz-offline-subset"
    assert report["settings"]["multi"].get("not_applicable")


def test_pooled_answers_no_longer_reward_identical_strings_across_languages():
    """A planted shortcut: the answer "2017" is the same string in en and de. For the en query, de's "2017" is
    neither relevant nor ranked; a differently written de answer ("Mai 2017") still counts."""
    from hybridviz.evaluate import evaluate_slice
    from hybridviz.tasks import Corpus

    corpus = Corpus("mkqa-answers", ["de", "en"], ["en:1", "de:1", "en:2"], ["en", "de", "en"],
                    ["when", "wann", "who"], ["1", "1", "2"],
                    ["en:a0", "de:a1", "de:a2", "en:a3", "de:a4"], ["en", "de", "de", "en", "de"],
                    ["2017", "2017", "Mai 2017", "Ann", "Ann"],
                    [frozenset({"1"}), frozenset({"1"}), frozenset({"1"}), frozenset({"2"}), frozenset({"2"})],
                    exclude_string_copies=True)
    assert corpus.string_copies(0) == {1}  # en:1's copy in de
    cross = make_slice(corpus, "cross", "en", "de")
    # en:1 keeps only "Mai 2017"; en:2's only de answer is its copy "Ann": dropped from this slice
    assert cross.queries.tolist() == [0] and cross.dropped == 1
    assert [cross.pool[r].tolist() for r in cross.relevant] == [[2]]
    multi = make_slice(corpus, "multi", "*", "*")
    assert [multi.pool[r].tolist() for r in multi.relevant][0] == [0, 2]
    # the copy scores highest of all, yet it is out of the ranking: "Mai 2017" is ranked 1st in the de pool
    Q = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    C = np.array([[0.9, 0.1], [1.0, 0.0], [0.8, 0.2], [0.0, 1.0], [0.0, 1.0]])
    (row,) = evaluate_slice(cross, Q, C, corpus, bias=False)
    assert row["ranks"].tolist() == [1]


@pytest.mark.parametrize("task", ["xquad-r", "mlqa-r"])
def test_a_paragraph_sample_keeps_whole_paragraphs_and_every_relevant_sentence(task, data_root):
    """The lab's first figures (sample_pool): whole paragraphs in every language, at least `limit` question groups,
    each sampled question's relevant sentences all in the pool (as in the whole corpus), seeded."""
    full = build_corpus(task)
    sample = build_corpus(task, limit=50, seed=3, sample_pool=True)
    assert sample.notes["pool"] == "sampled paragraphs"
    assert 50 <= len(set(sample.query_groups)) < len(set(full.query_groups)) / 4
    assert len(sample.cand_ids) < len(full.cand_ids) / 4
    paragraph = lambda cid: cid.rsplit(":", 1)[0]  # noqa: E731
    sizes = Counter(paragraph(c) for c in full.cand_ids)
    kept = Counter(paragraph(c) for c in sample.cand_ids)
    assert all(kept[p] == sizes[p] for p in kept)  # whole paragraphs only
    full_pos = {q: i for i, q in enumerate(full.query_ids)}
    for i, qid in enumerate(sample.query_ids):
        want = {full.cand_ids[c] for c in full.relevant_candidates(full_pos[qid])}
        got = {sample.cand_ids[c] for c in sample.relevant_candidates(i)}
        assert want and got == want, qid
    again = build_corpus(task, limit=50, seed=3, sample_pool=True)
    assert again.query_ids == sample.query_ids and again.cand_ids == sample.cand_ids
    assert build_corpus(task, limit=50, seed=4, sample_pool=True).query_ids != sample.query_ids
