"""The samplers in any sentence-transformers script (hybridviz.samplers, examples/train_with_sentence_transformers.py),
and saved folders that plain sentence-transformers encodes as hybridviz does (encoders/prompts.py)."""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybridviz.samplers import (
    COLUMNS,
    HybridBatchSampler,
    SamplerConfigError,
    XXMonoBatchSampler,
    XYBatchSampler,
    language_columns,
)
from hybridviz.training.trainer import TrainConfig, load_pairs, train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "train_with_sentence_transformers.py"
TEXTS = ["Wie alt ist das Universum?", "The universe is about 13.8 billion years old.", "kurz"]
# one trainer run per side for the batch comparison: hybrid, both batch types within its 8 steps at this seed
RUN = dict(model="tiny", sampler="hybrid", alpha=0.5, steps=8, batch_size=8, seed=3, train_languages=["en", "de"],
           learning_rate=2e-3, warmup_steps=0, save_steps=100, mixed_precision="fp32")


def example_module():
    spec = importlib.util.spec_from_file_location("train_with_sentence_transformers", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def columns(data_root):
    return load_pairs(TrainConfig(train_languages=["en", "de"])).columns()


def test_public_samplers_are_hybridviz_samplers_at_fixed_alpha(columns):
    assert COLUMNS == ("query", "positive", "query_lang", "passage_lang")
    kw = dict(batch_size=8, drop_last=True, seed=5, num_batches=40)
    mono, xy = list(XXMonoBatchSampler(columns, **kw)), list(XYBatchSampler(columns, **kw))
    assert mono == list(HybridBatchSampler(columns, alpha=1.0, **kw))
    assert xy == list(HybridBatchSampler(columns, alpha=0.0, **kw))
    assert all(len({columns["query_lang"][i] for i in b} | {columns["passage_lang"][i] for i in b}) == 1 for b in mono)
    assert all(columns["query_lang"][i] != columns["passage_lang"][i] for b in xy for i in b)
    with pytest.raises(SamplerConfigError, match="alpha 1"):
        XXMonoBatchSampler(columns, batch_size=8, alpha=0.5)


def test_the_columns_the_samplers_read(columns):
    from datasets import Dataset

    kw = dict(batch_size=8, drop_last=True, seed=1, alpha=0.5, num_batches=30)
    expected = list(HybridBatchSampler(columns, **kw))
    renamed = {("positive_lang" if k == "passage_lang" else k): v for k, v in columns.items()}
    dataset = Dataset.from_dict(renamed)  # a Dataset, with the positive_lang spelling
    assert list(HybridBatchSampler(dataset, **kw)) == expected
    # bound to the trainer's text-only dataset through for_dataset (what the example does); picklable
    factory = HybridBatchSampler.for_dataset(dataset, alpha=0.5)
    factory = pickle.loads(pickle.dumps(factory))
    texts_only = dataset.select_columns(["query", "positive"])
    assert list(factory(texts_only, batch_size=8, drop_last=True, seed=1, num_batches=30)) == expected
    # without a group each pair is its own group: batches still never repeat a text
    ungrouped = {k: v for k, v in columns.items() if k != "group"}
    for b in HybridBatchSampler(ungrouped, **kw):
        texts = [columns["query"][i] for i in b] + [columns["positive"][i] for i in b]
        assert len(set(texts)) == len(texts)
    with pytest.raises(SamplerConfigError, match="missing query_lang, passage_lang"):
        language_columns({"query": ["a"], "positive": ["b"]})
    with pytest.raises(SamplerConfigError, match="missing query_lang, passage_lang"):
        HybridBatchSampler.for_dataset(texts_only)


def _record_batches(monkeypatch) -> list:
    """Every batch the trainer's data collator receives, as its (query, positive) texts, in order."""
    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator

    batches, call = [], SentenceTransformerDataCollator.__call__

    def spy(self, features):
        batches.append([(f["query"], f["positive"]) for f in features])
        return call(self, features)

    monkeypatch.setattr(SentenceTransformerDataCollator, "__call__", spy)
    return batches


@pytest.fixture(scope="module")
def hybridviz_run(tmp_path_factory, data_root):
    """hybridviz's own trainer on RUN, with the batches it trained on."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        batches = _record_batches(monkeypatch)
        run = train(TrainConfig(**RUN), root=tmp_path_factory.mktemp("runs"))
    finally:
        monkeypatch.undo()
    assert run.status()["state"] == "done"
    return run, batches


@pytest.mark.slow  # a trainer run
def test_a_plain_trainer_draws_the_batches_of_hybridviz_trainer(hybridviz_run, monkeypatch, tmp_path, columns):
    _, expected = hybridviz_run
    module = example_module()
    args = module.parse_args(["--steps", str(RUN["steps"]), "--batch-size", str(RUN["batch_size"]),
                              "--seed", str(RUN["seed"]), "--alpha", str(RUN["alpha"]), "--languages", "en,de",
                              "--output", str(tmp_path / "out")])
    trainer, _ = module.build(args)
    assert type(trainer).__name__ == "SentenceTransformerTrainer"
    batches = _record_batches(monkeypatch)
    trainer.train()
    # the data loader fetches one batch ahead of the step that trains on it: steps + 1 batches are collated
    assert len(expected) == RUN["steps"] + 1 and all(len(b) == RUN["batch_size"] for b in expected)
    assert batches == expected
    # both batch types occur, so the comparison covers the hybrid draw, not one kind of batch
    lang = {(q, p): (ql, pl) for q, p, ql, pl in zip(columns["query"], columns["positive"], columns["query_lang"],
                                                   columns["passage_lang"])}
    kinds = {"mono" if all(lang[pair][0] == lang[pair][1] for pair in b) else "x-y" for b in expected}
    assert kinds == {"mono", "x-y"}


def _plain_matches_hybridviz(folder: Path, encoder) -> None:
    """Plain sentence-transformers on `folder` gives `encoder`'s embeddings (hybridviz, explicit prefixes)."""
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(folder), device="cpu")
    assert (encoder.query_prefix, encoder.passage_prefix) == ("query: ", "passage: ")
    np.testing.assert_allclose(plain.encode_query(TEXTS), encoder.encode(TEXTS, "query"), atol=1e-5)
    np.testing.assert_allclose(plain.encode_document(TEXTS), encoder.encode(TEXTS, "passage"), atol=1e-5)
    bare = plain.encode(TEXTS)  # the prefixes are there: without them the vectors differ
    assert np.abs(plain.encode_document(TEXTS) - bare).max() > 1e-3


@pytest.mark.slow  # a trainer run
def test_a_saved_run_encodes_in_plain_sentence_transformers_as_in_hybridviz(hybridviz_run):
    from hybridviz.encoders import load_encoder

    run, _ = hybridviz_run
    prompts = json.loads((run.model_dir / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "document": "passage: ", "passage": "passage: "}
    # hybridviz reads the run with the prefixes it trained with; plain sentence-transformers must agree
    _plain_matches_hybridviz(run.model_dir, load_encoder(str(run.model_dir), use_cache=False))


@pytest.mark.slow  # a trainer run
def test_the_example_script_runs_on_the_tiny_model(tmp_path, data_root):
    out = tmp_path / "model"
    result = subprocess.run([sys.executable, str(EXAMPLE), "--steps", "3", "--batch-size", "8", "--sampler", "x-y",
                             "--output", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained 3 steps (x-y)" in result.stdout
    from hybridviz.encoders import load_encoder

    _plain_matches_hybridviz(out, load_encoder(str(out), use_cache=False))


@pytest.mark.slow  # builds a tiny model
def test_the_tiny_base_folder_is_written_with_the_prompts(tmp_path, monkeypatch):
    from hybridviz.data import paths
    from hybridviz.encoders import load_encoder, locators, registry
    from hybridviz.encoders.prompts import E5_PREFIXES

    assert E5_PREFIXES == registry.E5_PREFIXES
    me5 = locators.me5_small_dir()  # its tokenizer: the real import, not rebuilt in tmp
    monkeypatch.setattr(locators, "me5_small_dir", lambda rebuild=False: me5)
    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    folder = locators.tiny_dir(0)
    assert folder.parent == tmp_path / "models"
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "document": "passage: ", "passage": "passage: "}
    monkeypatch.undo()
    _plain_matches_hybridviz(folder, load_encoder("tiny", use_cache=False))


def test_existing_folders_are_repaired_by_the_prompts_command(tmp_path, monkeypatch, capsys):
    """Folders written before the fix (an empty "document" prompt) are found in the cache and repaired in place;
    the weights are untouched."""
    from hybridviz.data import paths
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.prompts import main, repair_folder

    models, runs = tmp_path / "models", tmp_path / "runs"
    base = models / "tiny-seed0-v1"
    shutil.copytree(_tiny_folder(), base)
    old = {"query": "", "document": ""}  # what tiny_dir wrote before
    _set_prompts(base, old)
    run_model = runs / "r1" / "model"
    shutil.copytree(base, run_model)
    _set_prompts(run_model, {"query": "query: ", "passage": "passage: ", "document": ""})  # a run before
    (runs / "r1" / "config.json").write_text(json.dumps({"model": "tiny"}))
    (models / "elsewhere").mkdir()  # not hybridviz's: left alone
    monkeypatch.setattr(paths, "MODELS_DIR", models)
    monkeypatch.setattr(paths, "RUNS_DIR", runs)
    weights = (base / "model.safetensors").read_bytes()

    assert main(["--check"]) == 1
    assert "2 of 2 folder(s) need new prompts" in capsys.readouterr().out
    assert _prompts(base) == old
    assert main([]) == 0
    assert main(["--check"]) == 0
    wanted = {"query": "query: ", "document": "passage: ", "passage": "passage: "}
    assert _prompts(base) == _prompts(run_model) == wanted
    assert (base / "model.safetensors").read_bytes() == weights
    _plain_matches_hybridviz(base, load_encoder("tiny", use_cache=False))
    # a named folder takes explicit prefixes; one that records none keeps empty ones
    other = tmp_path / "other"
    shutil.copytree(base, other)
    _set_prompts(other, {"query": "", "document": ""})
    assert repair_folder(other) is None
    assert repair_folder(other, "q: ", "p: ") == {"query": "q: ", "document": "p: ", "passage": "p: "}
    with pytest.raises(FileNotFoundError):
        repair_folder(tmp_path / "nothing")


def _tiny_folder() -> Path:
    from hybridviz.encoders.registry import tiny_dir

    return tiny_dir(0)


def _prompts(folder: Path) -> dict:
    return json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"]


def _set_prompts(folder: Path, prompts: dict) -> None:
    path = folder / "config_sentence_transformers.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "prompts": prompts}))


@pytest.mark.parametrize("name, prompts, expected", [
    ("multilingual-e5-mine", {"query": "", "document": ""}, ("query: ", "passage: ")),  # ST's defaults: none saved
    ("my-encoder", {"query": "", "document": ""}, ("", "")),
    ("multilingual-e5-mine", {"query": "q> ", "document": "d> "}, ("q> ", "d> ")),  # saved prompts win
    ("my-encoder", {"query": "q> ", "passage": "p> ", "document": ""}, ("q> ", "p> ")),
])
def test_prefixes_come_from_saved_prompts_else_the_e5_name(tmp_path, name, prompts, expected):
    """sentence-transformers gives every model empty "query"/"document" prompts: those are no prompts, so an E5
    model from the hub (hf:intfloat/multilingual-e5-*) that saved none still gets 'query: '/'passage: '."""
    from sentence_transformers import SentenceTransformer

    from hybridviz.encoders import load_encoder

    folder = tmp_path / name
    shutil.copytree(_tiny_folder(), folder)
    _set_prompts(folder, prompts)
    assert {k: v for k, v in SentenceTransformer(str(folder)).prompts.items() if k in prompts} == prompts
    encoder = load_encoder(str(folder), use_cache=False)
    assert (encoder.query_prefix, encoder.passage_prefix) == expected
