"""Custom evaluation sets in the BEIR layout (`beir:<folder>`): validation, the Corpus they give, and XQuAD-R
written out in the layout giving the built-in task's figures exactly."""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from hybridviz.data.beir import BeirFormatError, load_beir
from hybridviz.errors import EmptyPool, HybridvizError, UnknownName
from hybridviz.tasks import build_corpus, check_task, make_slice, slices, task_dir, write_beir

CORPUS = [
    {"_id": "d1", "text": "Paris is the capital of France.", "lang": "en"},
    {"_id": "d2", "text": "Paris ist die Hauptstadt Frankreichs.", "lang": "de"},
    {"_id": "d3", "text": "Berlin is the capital of Germany.", "lang": "en", "title": "Berlin"},
    {"_id": "d4", "text": "Berlin ist die Hauptstadt Deutschlands.", "lang": "de"},
    {"_id": "d5", "text": "Rome is in Italy.", "lang": "it"},
]
QUERIES = [
    {"_id": "q1", "text": "capital of France?", "lang": "en", "group": "g1"},
    {"_id": "q2", "text": "Hauptstadt von Frankreich?", "lang": "de", "group": "g1"},
    {"_id": "q3", "text": "capital of Germany?", "lang": "en"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t1\nq2\td1\t1\nq2\td2\t1\nq3\td3\t1\nq3\td4\t2\nq3\td5\t0\n"


def make_folder(root: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS, name="set") -> Path:
    folder = root / name
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for file, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        text = rows if isinstance(rows, str) else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (folder / file).write_text(text, encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


def test_a_valid_folder_gives_the_corpus_of_its_qrels_languages_and_groups(tmp_path):
    folder = make_folder(tmp_path)
    corpus = build_corpus(f"beir:{folder}")
    assert corpus.languages == ["de", "en", "it"]
    # "<lang>:<group>": the statistics cluster a group's translations; a query without group is its own
    assert corpus.query_ids == ["en:g1", "de:g1", "en:q3"] and corpus.query_groups == ["g1", "g1", "q3"]
    assert corpus.cand_ids == ["d1", "d2", "d3", "d4", "d5"]
    assert corpus.cand_texts[2] == "Berlin Berlin is the capital of Germany."  # BEIR: title, then text
    rel = {corpus.query_ids[q]: sorted(corpus.cand_ids[c] for c in corpus.relevant_candidates(q)) for q in range(3)}
    assert rel == {"en:g1": ["d1", "d2"], "de:g1": ["d1", "d2"], "en:q3": ["d3", "d4"]}  # score 0: not relevant
    mono = {(s.query_lang, s.pool_lang): s for s in slices(corpus, "mono")}
    assert set(mono) == {("de", "de"), ("en", "en")}  # no Italian query; Italian is a distractor of cross / multi
    cross = make_slice(corpus, "cross", "en", "de")
    assert [corpus.cand_ids[cross.pool[j]] for r in cross.relevant for j in r] == ["d2", "d4"]
    (multi,) = slices(corpus, "multi")
    assert len(multi.pool) == 5 and [len(r) for r in multi.relevant] == [2, 2, 2]
    assert corpus.notes["graded"] and corpus.notes["layout"] == "beir"
    # a language subset restricts queries and pool alike
    sub = build_corpus(f"beir:{folder}", ["en", "it"])
    assert sub.cand_ids == ["d1", "d3", "d5"] and sub.query_ids == ["en:g1", "en:q3"]
    with pytest.raises(UnknownName, match="Unknown language code"):
        build_corpus(f"beir:{folder}", ["fr"])
    with pytest.raises(EmptyPool):
        build_corpus(f"beir:{folder}", ["it"])  # no query in Italian


def test_task_names_and_folder_names(tmp_path):
    folder = make_folder(tmp_path, name="my set")
    assert check_task(f"beir:{folder}") == f"beir:{folder}" and check_task("xquad-r") == "xquad-r"
    with pytest.raises(UnknownName, match="beir:<folder>"):
        check_task("xquad")
    name = task_dir(f"beir:{folder}")
    assert re.fullmatch(r"beir-my_set-[0-9a-f]{6}", name) and "/" not in name
    assert task_dir(f"beir:{folder}/") == name and task_dir("xquad-r") == "xquad-r"
    with pytest.raises(BeirFormatError, match="was not found"):
        build_corpus(f"beir:{tmp_path / 'absent'}")


def test_relative_folders_resolve_in_the_data_directory(tmp_path, monkeypatch):
    make_folder(tmp_path / "custom")
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path / "custom")  # not relative to the working directory: "custom/set" is not here
    assert len(build_corpus("beir:custom/set").query_ids) == 3


def test_mteb_files_jsonl_qrels_gzip_and_other_splits(tmp_path):
    """MTEB's retrieval files: qrels as JSON lines, gzip-compressed jsonl, and queries of other splits."""
    folder = tmp_path / "mteb"
    (folder / "qrels").mkdir(parents=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in CORPUS)
    queries = QUERIES + [{"_id": "t1", "text": "a training question", "lang": "en"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    rows = [line.split("\t") for line in QRELS.splitlines()[1:]]
    (folder / "qrels" / "test.jsonl").write_text("".join(
        json.dumps({"query-id": q, "corpus-id": c, "score": int(s)}) + "\n" for q, c, s in rows))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nt1\td5\t1\n")
    data = load_beir(folder)
    assert data.layout == "mteb" and data.notes["queries_of_other_splits"] == 1 and len(data.query_ids) == 3
    assert len(build_corpus(f"beir:{folder}").query_ids) == 3


def _bad(tmp_path, **parts) -> str:
    with pytest.raises(BeirFormatError) as err:
        load_beir(make_folder(tmp_path, **parts))
    return str(err.value)


C, Q = "corpus.jsonl", "queries.jsonl"
T = "qrels/test.tsv"


def _rows(rows, i, **change):
    out = [dict(r) for r in rows]
    out[i].update(change)
    for k, v in change.items():
        if v is None:
            del out[i][k]
    return out


BAD = {
    "malformed JSON": (dict(corpus="".join(json.dumps(r) + "\n" for r in CORPUS[:2]) + '{"_id": "d3", "text": \n'),
                       C, 3, "malformed JSON"),
    "not an object": (dict(queries='["q1", "text"]\n'), Q, 1, "expected a JSON object"),
    "missing text": (dict(corpus=_rows(CORPUS, 1, text=None)), C, 2, "missing field(s) text"),
    "missing lang": (dict(queries=_rows(QUERIES, 2, lang=None)), Q, 3, "missing field(s) lang"),
    "missing _id": (dict(queries=_rows(QUERIES, 0, _id=None)), Q, 1, "missing field(s) _id"),
    "empty lang": (dict(corpus=_rows(CORPUS, 4, lang="")), C, 5, "lang is empty"),
    "blank lang": (dict(queries=_rows(QUERIES, 1, lang="  ")), Q, 2, "lang is empty"),
    "lang with a colon": (dict(corpus=_rows(CORPUS, 0, lang="en:us")), C, 1, "must be a language code"),
    "empty text": (dict(queries=_rows(QUERIES, 0, text=" ")), Q, 1, "text is empty"),
    "text not a string": (dict(corpus=_rows(CORPUS, 3, text=7)), C, 4, "text must be a string"),
    "empty _id": (dict(corpus=_rows(CORPUS, 3, _id="")), C, 4, "_id must be a non-empty string"),
    "duplicate corpus id": (dict(corpus=_rows(CORPUS, 3, _id="d1")), C, 4, "duplicate _id 'd1' (first on line 1)"),
    "duplicate query id": (dict(queries=_rows(QUERIES, 2, _id="q1")), Q, 3, "duplicate _id 'q1' (first on line 1)"),
    "two queries of a group in one language": (dict(queries=_rows(QUERIES, 1, lang="en")), Q, 2,
                                               "group 'g1' already has a query in 'en' (line 1)"),
    "bad TSV header": (dict(qrels=QRELS.replace("query-id\t", "qid\t", 1)), T, 1, "the header must be"),
    "header with spaces not tabs": (dict(qrels=QRELS.replace("query-id\tcorpus-id\tscore", "query-id corpus-id score")),
                                    T, 1, "the header must be"),
    "two fields": (dict(qrels=QRELS + "q1\td3\n"), T, 9, "expected 3 tab-separated fields"),
    "score not a number": (dict(qrels=QRELS.replace("q3\td3\t1", "q3\td3\tyes")), T, 6, "score must be a number"),
    "qrel to an unknown document": (dict(qrels=QRELS + "q1\td9\t1\n"), T, 9, "corpus-id 'd9' is not in corpus.jsonl"),
    "qrel to an unknown query": (dict(qrels=QRELS + "q7\td1\t1\n"), T, 9, "query-id 'q7' is not in queries.jsonl"),
    "query without a qrel": (dict(queries=QUERIES + [{"_id": "q4", "text": "lonely", "lang": "de"}]), Q, 4,
                             "query 'q4' has no relevant item: it has no row"),
    "query judged only irrelevant": (dict(qrels=QRELS.replace("q3\td3\t1", "q3\td3\t0").replace("q3\td4\t2",
                                                                                               "q3\td4\t0")),
                                     Q, 3, "query 'q3' has no relevant item: it is judged only with score <= 0"),
    "conflicting duplicate qrel": (dict(qrels=QRELS + "q1\td1\t2\n"), T, 9, "judged twice with different scores"),
    "empty corpus": (dict(corpus=""), C, 1, "the corpus holds no rows"),
    "empty qrels": (dict(qrels=""), T, 1, "the file is empty"),
    "not UTF-8": ({}, Q, 2, None),  # written as bytes below
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_input_is_one_error_naming_file_and_line(tmp_path, case):
    parts, file, line, needle = BAD[case]
    if case == "not UTF-8":  # a lone byte 0xff in line 2
        folder = make_folder(tmp_path)
        (folder / Q).write_bytes(json.dumps(QUERIES[0]).encode() + b"\n" + b'{"_id": "q2", "text": "\xff", '
                                 b'"lang": "de", "group": "g1"}\n' + json.dumps(QUERIES[2]).encode() + b"\n")
        with pytest.raises(BeirFormatError) as err:
            load_beir(folder)
        message, needle = str(err.value), "not UTF-8 text"
    else:
        message = _bad(tmp_path, **parts)
    assert isinstance(BeirFormatError(""), HybridvizError)
    assert message.startswith(f"{tmp_path / 'set' / file}:{line}: "), message
    assert needle in message, message


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_a_missing_file_is_named(tmp_path, missing):
    folder = make_folder(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(BeirFormatError, match=re.escape(f"{folder / missing}: file missing")):
        load_beir(folder)


def test_an_invalid_set_writes_nothing(tmp_path):
    """`evaluate` validates before loading a model: a bad folder leaves no output folder behind (the command's
    function is called directly: building the whole parser imports torch)."""
    import argparse

    from hybridviz.cli.commands import cmd_evaluate

    folder = make_folder(tmp_path, qrels=QRELS + "q1\td9\t1\n")
    out = tmp_path / "out"
    args = argparse.Namespace(model="tiny", task=f"beir:{folder}", out=str(out), languages=None, settings=None,
                              limit=None, seed=0, batch_size=None, precision="fp32")
    with pytest.raises(BeirFormatError, match=re.escape(f"{folder / T}:9: corpus-id 'd9' is not in corpus.jsonl")):
        cmd_evaluate(args)
    assert not out.exists()


def test_a_100k_line_corpus_validates_in_seconds(tmp_path):
    corpus = [{"_id": f"d{i}", "text": f"document number {i} " * 8, "lang": ("en", "de")[i % 2]}
              for i in range(100_000)]
    queries = [{"_id": f"q{i}", "text": f"question {i}", "lang": "en", "group": f"g{i}"} for i in range(20_000)]
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{2 * i}\t1\n" for i in range(20_000))
    folder = make_folder(tmp_path, corpus=corpus, queries=queries, qrels=qrels)
    start = time.perf_counter()
    data = load_beir(folder, checksums=False)
    assert len(data.doc_ids) == 100_000
    assert time.perf_counter() - start < 10


def test_write_beir_round_trips_and_refuses_what_it_cannot_say(tmp_path):
    folder = make_folder(tmp_path)
    corpus = build_corpus(f"beir:{folder}")
    out = write_beir(corpus, tmp_path / "again")
    again = build_corpus(f"beir:{out}")
    assert (again.query_ids, again.cand_ids, again.cand_texts) == (corpus.query_ids, corpus.cand_ids,
                                                                  corpus.cand_texts)
    assert [again.relevant_candidates(q) for q in range(3)] == [corpus.relevant_candidates(q) for q in range(3)]
    with pytest.raises(BeirFormatError, match="not empty"):
        write_beir(corpus, out)
    from hybridviz.tasks import Corpus

    own = Corpus("mkqa-queries", ["en"], ["en:1"], ["en"], ["q"], ["1"], ["en:1"], ["en"], ["q"],
                 [frozenset({"1"})], exclude_self=True)
    with pytest.raises(UnknownName, match="cannot be written out"):
        write_beir(own, tmp_path / "own")
    assert not (tmp_path / "own").exists()


def test_the_embedding_map_links_a_groups_translations(tmp_path):
    from hybridviz.projection import parallel_items

    items = parallel_items(f"beir:{make_folder(tmp_path)}", n_groups=5)
    assert items[["item_id", "group", "lang"]].values.tolist() == [["en:g1", "g1", "en"], ["de:g1", "g1", "de"]]
    assert set(items["kind"]) == {"query"}


def test_the_zero_shot_guard_reads_a_custom_set(tmp_path):
    """The guard compares normalised texts; a custom set named among its benchmarks is one of them."""
    from hybridviz.training.data import PairSet, ZeroShotViolation, check_zero_shot

    folder = make_folder(tmp_path)
    pairs = PairSet(source="test")
    pairs.add("CAPITAL  of france?", "something else", "en", "en", "1")
    check_zero_shot(pairs, benchmarks=())  # against nothing: passes
    with pytest.raises(ZeroShotViolation, match="capital of France"):
        check_zero_shot(pairs, benchmarks=(f"beir:{folder}",))


def test_a_custom_set_in_the_grid(tmp_path, tiny):
    """experiment --tasks beir:<folder>: the set joins the grid's evaluations (validated first), its results lie
    under a folder name of their own, the bundle lists it by its task name, and a continued bundle keeps it."""
    from hybridviz.experiments.bundle import load_bundle
    from hybridviz.experiments.custom_tasks import with_custom_tasks
    from hybridviz.experiments.grid import GridSpec, run_grid

    folder = make_folder(tmp_path)
    task = f"beir:{folder}"
    base = dict(model="tiny", samplers=[], seeds=[], alphas=[], methods=[], sampler_method=None, evaluations=[],
                precision="fp32", train_precision="fp32")
    spec = with_custom_tasks(GridSpec(**base), ["xquad-r", task])
    assert spec.evaluations == [{"task": task, "languages": None, "limit": None}]
    out = tmp_path / "bundle"
    run_grid(out, spec, log=lambda m: None, tasks=[task])
    assert (out / "models" / "base" / task_dir(task) / "metrics.json").is_file()
    bundle = load_bundle(out)
    assert bundle.tasks() == [task] and bundle.get("base", task).metrics["settings"]["multi"]["macro"]["mAP"] > 0
    assert with_custom_tasks(GridSpec(**base), None, out).evaluations == spec.evaluations  # kept on continuing
    bad = make_folder(tmp_path, name="bad", qrels=QRELS + "q1\td9\t1\n")
    with pytest.raises(BeirFormatError, match=re.escape(f"{bad / T}:9: corpus-id 'd9'")):
        with_custom_tasks(spec, [f"beir:{bad}"])


# ----------------------------------------------------------------------------------------------- acceptance


LANGS = ["de", "en", "th"]


@pytest.fixture(scope="module")
def xquad_as_beir(tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("beir") / "xquad-r"
    write_beir(build_corpus("xquad-r", LANGS), folder)
    return folder


def test_xquad_r_as_beir_is_the_same_corpus(xquad_as_beir, data_root):
    ours, theirs = build_corpus(f"beir:{xquad_as_beir}", LANGS), build_corpus("xquad-r", LANGS)
    for name in ("languages", "query_ids", "query_langs", "query_texts", "query_groups", "cand_ids", "cand_langs",
                 "cand_texts", "cand_groups"):
        assert getattr(ours, name) == getattr(theirs, name), name
    for setting in ("mono", "cross", "multi"):
        for a, b in zip(slices(ours, setting), slices(theirs, setting), strict=True):
            assert np.array_equal(a.queries, b.queries) and np.array_equal(a.pool, b.pool) and a.dropped == b.dropped
            assert all(np.array_equal(x, y) for x, y in zip(a.relevant, b.relevant, strict=True))
    sample, builtin = build_corpus(f"beir:{xquad_as_beir}", ["en", "th"], 40, 3), build_corpus("xquad-r", ["en", "th"],
                                                                                            40, 3)
    assert sample.query_ids == builtin.query_ids and sample.cand_ids == builtin.cand_ids


def test_xquad_r_as_beir_gives_the_same_figures(xquad_as_beir, tiny):
    """The acceptance test of issue #33: the tiny model, three languages, every setting, to 1e-12."""
    from hybridviz.evaluate import evaluate

    builtin = evaluate("tiny", "xquad-r", languages=LANGS, encoder=tiny)
    custom = evaluate("tiny", f"beir:{xquad_as_beir}", languages=LANGS, encoder=tiny)
    for setting in ("mono", "cross", "multi"):
        a, b = builtin["settings"][setting], custom["settings"][setting]
        for metric, value in a["macro"].items():
            assert b["macro"][metric] == pytest.approx(value, abs=1e-12), (setting, metric)
        for lang, values in a["per_language"].items():
            for metric, value in values.items():
                assert b["per_language"][lang][metric] == pytest.approx(value, abs=1e-12), (setting, lang, metric)
    assert custom["settings"]["multi"]["macro"]["max_rank_distance"] == pytest.approx(
        builtin["settings"]["multi"]["macro"]["max_rank_distance"], abs=1e-12)
    assert custom["settings"]["cross"]["pairs"].keys() == builtin["settings"]["cross"]["pairs"].keys()
    assert custom["settings"]["multi"]["mean_rank_correlation"]["macro"] == pytest.approx(
        builtin["settings"]["multi"]["mean_rank_correlation"]["macro"], abs=1e-12)
    assert custom["settings"]["multi"]["macro"]["mAP"] > 0
