"""Your own training pairs (a JSONL file of {id, lang, query, positive}) in the grid: validated line by line before
any unit, pinned by its sha256 (run ids follow the content; a changed file does not continue a bundle), and checked
by the zero-shot guard against the grid's chosen evaluation sets, custom ones included."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest

from hybridviz.errors import DataFormatError, HybridvizError
from hybridviz.experiments.grid import GridSpec, check_training_data, pin_training_file, plan, run_grid
from hybridviz.training.data import ZeroShotViolation, guard_benchmarks
from hybridviz.training.trainer import TrainConfig, TrainConfigError, prepare_run

from conftest import ROOT, run_cli

# a tiny grid: 2 samplers x 1 seed, 2 steps, one tiny evaluation
TINY = dict(model="tiny", samplers=["x-x-mono", "x-y"], seeds=[0], alphas=[], methods=[], sampler_method=None,
            steps=2, batch_size=4, learning_rate=1e-3, warmup_steps=0, precision="fp32", train_precision="fp32",
            evaluations=[{"task": "xquad-r", "languages": ["en", "de"], "limit": 8}])


def write_pairs(path: Path, n: int = 16, extra: list[dict] | None = None) -> Path:
    rows = []
    for i in range(n):
        rows.append({"id": f"q{i}", "lang": "en", "query": f"which colour has item number {i}",
                     "positive": f"Item number {i} is painted in shade {i * 7}."})
        rows.append({"id": f"q{i}", "lang": "de", "query": f"welche Farbe hat Gegenstand Nummer {i}",
                     "positive": f"Gegenstand Nummer {i} ist im Farbton {i * 7} gestrichen."})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows + (extra or [])),
                    encoding="utf-8")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_grid_trains_on_a_jsonl_file_records_its_hash_and_refuses_it_changed(tmp_path, data_root):
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    spec = GridSpec(**TINY, train_data=str(pairs))
    out, runs = tmp_path / "bundle", tmp_path / "runs"
    manifest = run_grid(out, spec, log=lambda m: None, runs_root=runs)
    digest = sha256(pairs)
    assert manifest["spec"]["train_data"] == str(pairs) and manifest["spec"]["train_data_sha256"] == digest
    assert manifest["training_file"]["sha256"] == digest and manifest["training_file"]["bytes"] > 0
    assert {label: s["state"] for label, s in manifest["units"].items()} == {
        "base": "done", "x-x-mono-s0": "done", "x-y-s0": "done"}
    for label in ("x-x-mono-s0", "x-y-s0"):
        run_id = manifest["units"][label]["run_id"]
        config = json.loads((runs / run_id / "config.json").read_text())
        assert config["extra"]["train_data_sha256"] == digest and config["data_files"] == {str(pairs): digest}
        assert config["zero_shot_checked"] == ["xquad-r"]  # the grid's chosen sets, not a fixed list
        assert (out / "models" / label / "xquad-r" / "metrics.json").is_file()
    # run ids follow the content: the same file elsewhere names the same runs, other content other runs
    moved = shutil.copy(pairs, tmp_path / "elsewhere.jsonl")
    same = pin_training_file(GridSpec(**TINY, train_data=str(moved)))
    assert same.train_config("x-y", 0).run_id() == manifest["units"]["x-y-s0"]["run_id"]
    other = pin_training_file(GridSpec(**TINY, train_data=str(write_pairs(tmp_path / "other.jsonl", n=17))))
    assert other.train_config("x-y", 0).run_id() != manifest["units"]["x-y-s0"]["run_id"]
    # a changed file does not continue the bundle, and the bundle is left as it was
    before = (out / "manifest.json").read_bytes()
    write_pairs(pairs, n=17)
    with pytest.raises(HybridvizError, match=re.escape(f"The training file {pairs} has changed since {out} was "
                                                       f"started (sha256 {digest[:12]}… there")):
        run_grid(out, GridSpec(**TINY, train_data=str(pairs)), log=lambda m: None, runs_root=runs)
    assert (out / "manifest.json").read_bytes() == before
    # a run pinned to the old content is refused by the trainer too
    with pytest.raises(TrainConfigError, match="has changed since it was pinned"):
        prepare_run(replace(spec, train_data_sha256=digest).train_config("x-y", 0), root=runs)


def test_a_malformed_line_is_refused_naming_file_and_line_before_anything_is_written(tmp_path):
    bad = write_pairs(tmp_path / "bad.jsonl", n=3)
    lines = bad.read_text().splitlines()
    lines[3] = '{"id": "q1", "lang": "de", "query": "welche Farbe"'
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "bundle"
    with pytest.raises(DataFormatError, match=re.escape(f"{bad}, line 4: malformed JSON")):
        run_grid(out, GridSpec(**TINY, train_data=str(bad)), log=lambda m: None, runs_root=tmp_path / "runs")
    assert not out.exists() and not (tmp_path / "runs").exists()
    oversize = write_pairs(tmp_path / "big.jsonl", n=3)
    from hybridviz.training.data import jsonl_pairs

    with pytest.raises(DataFormatError, match="the limit is 100"):  # the lab's size check
        jsonl_pairs(oversize, max_bytes=100)


def test_a_training_file_is_read_as_an_evaluation_folders_files_are(tmp_path):
    """jsonl_pairs reads through the reader of the BEIR folders (fileio.iter_jsonl): a bad byte names its line, a
    line that is not an object names what it is, a BOM before the first line is no error."""
    from hybridviz.training.data import jsonl_pairs

    good = write_pairs(tmp_path / "good.jsonl", n=2)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(good.read_bytes().splitlines(keepends=True)[:2])
                    + b'{"id": "q9", "lang": "en", "query": "\xff", "positive": "p"}\n')
    with pytest.raises(DataFormatError, match=re.escape(f"{bad}, line 3: not UTF-8 text")):
        jsonl_pairs(bad)
    bad.write_text('["q1", "en"]\n')
    with pytest.raises(DataFormatError, match=re.escape(
            f"{bad}, line 1: expected an object with id, lang, query, positive, got list.")):
        jsonl_pairs(bad)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + good.read_bytes())
    assert jsonl_pairs(bom).columns() == jsonl_pairs(good).columns()


@pytest.mark.slow
def test_the_cli_refuses_a_malformed_line_in_one_sentence(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "lang": "en", "query": "q", "positive": "p"}\n{"id": 2, "lang": "en"}\n')
    out = tmp_path / "bundle"
    result = run_cli("experiment", "--model", "tiny", "--train-data", str(bad), "--out", str(out), "--seeds", "0",
                     "--samplers", "x-y", "--methods", "none", "--sampler-method", "none", "--plan")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{bad}, line 2: missing field(s) query, positive." in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_the_guard_checks_the_chosen_evaluation_sets_custom_ones_included(tmp_path, data_root):
    from hybridviz.data import load_lareqa
    from test_beir import make_folder

    leaked = load_lareqa("xquad-r", ["de"]).questions[0].text
    xq = write_pairs(tmp_path / "xq.jsonl", extra=[{"id": "x", "lang": "de", "query": leaked, "positive": "p"}])
    out = tmp_path / "bundle"
    with pytest.raises(ZeroShotViolation, match=rf"xq\.jsonl\) overlaps the evaluation data.*xquad-r: "
                                                 rf"{re.escape(repr(leaked[:60]))}.*checked against: xquad-r"):
        run_grid(out, GridSpec(**TINY, train_data=str(xq)), log=lambda m: None, runs_root=tmp_path / "runs")
    assert not out.exists() and not (tmp_path / "runs").exists()
    # a custom set (beir:<folder>): its query texts are evaluation texts once the grid evaluates on it
    folder = make_folder(tmp_path)
    task = f"beir:{folder}"
    custom = write_pairs(tmp_path / "custom.jsonl", extra=[
        {"id": "c", "lang": "en", "query": "Capital of  FRANCE?", "positive": "somewhere"}])
    on_custom = pin_training_file(GridSpec(**{**TINY, "evaluations": [
        {"task": "xquad-r", "languages": ["en"], "limit": 8}, {"task": task, "languages": None, "limit": None}]},
        train_data=str(custom)))
    assert on_custom.guard == ("xquad-r", task)
    with pytest.raises(ZeroShotViolation, match=re.escape(f"{task}: 'capital of France?'")):
        run_grid(out, on_custom, log=lambda m: None, runs_root=tmp_path / "runs")
    assert not out.exists()
    # the custom set not chosen: the same file passes
    check_training_data(pin_training_file(GridSpec(**TINY, train_data=str(custom))), log=lambda m: None)
    # a corpus text is evaluation data too, with its title or without it
    titled = write_pairs(tmp_path / "titled.jsonl", extra=[
        {"id": "t", "lang": "en", "query": "something", "positive": "Berlin is the capital of GERMANY."}])
    with pytest.raises(ZeroShotViolation, match=re.escape(f"{task}: 'Berlin is the capital of Germany.'")):
        check_training_data(pin_training_file(replace(on_custom, train_data=str(titled), train_data_sha256=None)),
                            log=lambda m: None)
    # the trainer takes the sets as an argument (a lone run: xquad-r and MKQA, as before)
    config = on_custom.train_config("x-y", 0)
    with pytest.raises(ZeroShotViolation, match=re.escape(task)):
        prepare_run(config, root=tmp_path / "runs", benchmarks=on_custom.guard)
    # built-in training data is checked against a chosen custom set before any unit as well
    mlqa = GridSpec(**{**TINY, "evaluations": on_custom.evaluations})
    assert mlqa.guard == ("xquad-r", task)
    check_training_data(mlqa, log=lambda m: None)


def test_guard_names_and_unchanged_run_ids_of_the_committed_bundles():
    assert guard_benchmarks(GridSpec().evaluations) == ("xquad-r", "mkqa") == GridSpec().guard
    assert guard_benchmarks(["mkqa-mteb", "beir:x", "mlqa-r", "mkqa-answers"]) == ("mkqa", "beir:x", "mlqa-r")
    names = {f.name for f in fields(GridSpec)}
    checked = 0
    for path in sorted((ROOT / "cache" / "reference").glob("*/manifest.json")):
        manifest = json.loads(path.read_text())
        spec = GridSpec(**{k: v for k, v in manifest["spec"].items() if k in names})
        ids = {u.label: u.config.run_id() for u in plan(spec) if u.config}
        for label, state in manifest["units"].items():
            if state.get("run_id") and label in ids:
                assert ids[label] == state["run_id"], (path, label)
                checked += 1
    assert checked > 0
    assert TrainConfig().run_id() == TrainConfig(extra={}).run_id()
    assert "train_data_sha256" not in asdict(GridSpec())["train_extra"]


def test_a_jsonl_file_holds_out_whole_ids(tmp_path):
    """Early stopping on a JSONL file: 20 % of its ids held out whole (every language of an id on one side), the
    pool their positives; the converged regime's "paragraphs" pool is MLQA-R's only."""
    from hybridviz.training.trainer import load_pairs, validation_corpus, validation_pairs
    from hybridviz.training.validation import effective_pool

    path = write_pairs(tmp_path / "pairs.jsonl", n=20)
    config = TrainConfig(model="tiny", train_data=str(path), holdout=0.2, extra={"holdout_pool": "paragraphs"})
    train_ids, held_ids = set(load_pairs(config).group), set(validation_pairs(config).group)
    assert len(held_ids) == 4 and not train_ids & held_ids and train_ids | held_ids == {f"q{i}" for i in range(20)}
    corpus = validation_corpus(config)
    assert corpus.notes["pool"] == "answers" and len(corpus.query_ids) == 8 and len(corpus.cand_ids) == 8
    assert effective_pool("paragraphs", str(path)) == "answers" and effective_pool("paragraphs", "mlqa-r") == \
        "paragraphs"
