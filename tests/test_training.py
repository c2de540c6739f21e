"""Fine-tuning: settings checked first, loss goes down, weights change, runs survive kills, one at a time, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridviz.errors import HybridvizError
from hybridviz.training.runs import Run, reconcile, training_slot
from hybridviz.training.samplers import HybridBatchSampler
from hybridviz.training.trainer import TrainConfig, load_pairs, train

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(model="tiny", batch_size=16, warmup_steps=0, freeze_word_embeddings=False,
            train_languages=["en", "de"], learning_rate=2e-3)


def held_loss(model, pairs, batches, temperature=0.05) -> float:
    """InfoNCE of fixed batches, computed outside the trainer."""
    losses = []
    with torch.no_grad():
        for b in batches:
            q = model.encode(["query: " + pairs.query[i] for i in b], convert_to_tensor=True,
                             normalize_embeddings=True)
            p = model.encode(["passage: " + pairs.positive[i] for i in b], convert_to_tensor=True,
                             normalize_embeddings=True)
            losses.append(torch.nn.functional.cross_entropy(q @ p.T / temperature, torch.arange(len(b))).item())
    return float(np.mean(losses))


@pytest.mark.parametrize("changes, message", [
    ({"alpha": 1.2}, r"alpha must lie in \[0, 1\]"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"batch_size": 100_000}, "larger than the"),
    ({"train_languages": ["en", "tlh"]}, "(?i)unknown.*tlh"),
    ({"sampler": "round-robin"}, "sampler must be one of"),
    ({"temperature": 0}, "temperature"),
])
def test_invalid_settings_rejected_before_any_work(tmp_path, data_root, changes, message):
    config = TrainConfig(**{**FAST, "steps": 5, **changes})
    with pytest.raises(HybridvizError, match=message):  # TrainConfigError, or the loader's UnknownName
        train(config, root=tmp_path)
    assert not list(tmp_path.glob("*/model")), "nothing was trained"


@pytest.mark.slow
def test_training_lowers_loss_and_changes_weights(tmp_path, data_root, tiny):
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    config = TrainConfig(**FAST, sampler="hybrid", steps=20, save_steps=100, max_seq_length=64)
    pairs = load_pairs(config)
    batches = list(HybridBatchSampler(pairs.columns(), batch_size=16, drop_last=True, seed=0, num_batches=6))
    before = held_loss(tiny.model, pairs, batches)
    run = train(config, root=tmp_path)
    status = run.status()
    assert status["state"] == "done" and status["step"] == 20
    log = run.train_log()
    assert [r["step"] for r in log] == list(range(1, 21)) and all(r["loss"] > 0 for r in log)
    trained = SentenceTransformer(str(run.model_dir), device="cpu")
    after = held_loss(trained, pairs, batches)
    assert after < before - 0.3, (before, after)
    old = load_file(next(Path(tiny.model[0].auto_model.name_or_path).rglob("model.safetensors")))
    new = load_file(next(run.model_dir.rglob("model.safetensors")))
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert len(changed) > len(old) // 2
    cfg = run.config()
    assert cfg["sampler"] == "hybrid" and cfg["seen_languages"] == ["de", "en"]
    assert all(len(sha) == 64 for sha in cfg["data_files"].values())
    assert (trained.prompts["query"], trained.prompts["passage"]) == ("query: ", "passage: ")
    # trained on 64 tokens, saved to read texts as long as its base does (models are compared at equal lengths)
    assert trained.max_seq_length == tiny.model.max_seq_length == 128
    from hybridviz.encoders import load_encoder

    reloaded = load_encoder(str(run.model_dir))
    assert (reloaded.query_prefix, reloaded.passage_prefix) == ("query: ", "passage: ")
    assert train(config, root=tmp_path).status()["updated"] == status["updated"], "a finished run is kept"


def test_frozen_word_embeddings_stay_frozen(tmp_path, data_root, tiny):
    from safetensors.torch import load_file

    run = train(TrainConfig(**{**FAST, "freeze_word_embeddings": True}, steps=3), root=tmp_path)
    key = "embeddings.word_embeddings.weight"
    old = load_file(next(Path(tiny.model[0].auto_model.name_or_path).rglob("model.safetensors")))
    new = load_file(next(run.model_dir.rglob("model.safetensors")))
    assert torch.equal(old[key], new[key])
    assert not torch.equal(old["encoder.layer.0.attention.self.query.weight"],
                           new["encoder.layer.0.attention.self.query.weight"])


@pytest.mark.slow
def test_muse_fine_tunes_with_the_same_trainer(tmp_path, data_root):
    """mUSE (a non-transformer module) trains through the same trainer: its token table stays frozen, the CNN and
    DAN layers move, and the saved run loads back with mUSE's empty prompts and reads its full length again."""
    from safetensors.torch import load_file

    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.registry import muse_dir

    run = train(TrainConfig(model="muse", steps=3, batch_size=8, learning_rate=1e-3, warmup_steps=0,
                            train_languages=["en", "de", "es"], mixed_precision="fp32"), root=tmp_path)
    assert run.status()["state"] == "done"
    old = load_file(str(muse_dir() / "model.safetensors"))
    new = load_file(str(next(run.model_dir.rglob("model.safetensors"))))
    assert torch.equal(old["embeddings.weight"], new["embeddings.weight"])
    assert not torch.equal(old["w1_3"], new["w1_3"]) and not torch.equal(old["d0"], new["d0"])
    tuned, base = load_encoder(str(run.model_dir), use_cache=False), load_encoder("muse", use_cache=False)
    assert (tuned.query_prefix, tuned.passage_prefix) == ("", "") and tuned.max_seq_length == base.max_seq_length
    a, b = tuned.encode(["Wie alt ist das Universum?"], "query"), base.encode(["Wie alt ist das Universum?"], "query")
    assert 0.5 < float((a @ b.T)[0, 0]) < 1 - 1e-6  # moved, not destroyed


def _train_cli(tmp_path, *args):
    env = {**os.environ, "HYBRIDVIZ_CACHE": str(tmp_path)}
    return subprocess.Popen([sys.executable, "-m", "hybridviz", "train", "--model", "tiny", "--batch-size", "16",
                             "--lr", "2e-3", "--warmup", "0", "--languages", "en,de", "--train-word-embeddings",
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_killed_run_is_marked_failed_and_resumes_from_checkpoint(tmp_path, data_root, tiny):
    # tiny's model folder lives in the default cache; the child uses its own cache for runs only
    models = tmp_path / "models"
    models.symlink_to(Path(tiny.model[0].auto_model.name_or_path).parents[1])
    proc = _train_cli(tmp_path, "--steps", "14", "--save-steps", "4")
    runs = tmp_path / "runs"
    deadline = time.time() + 300
    while time.time() < deadline:
        found = list(runs.glob("*/status.json"))
        if found and json.loads(found[0].read_text()).get("step", 0) >= 6:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = [p.parent for p in runs.glob("*/status.json")]
    run = Run(run_dir.name, runs)
    assert run.status()["state"] == "running"  # what a kill leaves behind ...
    assert reconcile(runs) == [run.id]
    assert run.status()["state"] == "failed"  # ... is marked failed on the next start
    assert run.last_checkpoint() is not None
    resumed_from = int(run.last_checkpoint().name.split("-")[1])
    proc = _train_cli(tmp_path, "--steps", "14", "--save-steps", "4")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert run.status()["state"] == "done"
    steps = [r["step"] for r in run.train_log()]
    assert steps[-1] == 14 and steps.count(resumed_from + 1) == 2, "resumed after the last checkpoint"


def test_partial_checkpoint_is_never_resumed_from(tmp_path):
    run = Run("r", tmp_path)
    for step, complete in ((4, True), (8, False)):
        ckpt = run.checkpoints_dir / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        if complete:
            (ckpt / "trainer_state.json").write_text("{}")
    assert run.last_checkpoint().name == "checkpoint-4"
    assert [p.name for p in run.discard_incomplete_checkpoints()] == ["checkpoint-8"]
    assert [p.name for p in run.checkpoints_dir.iterdir()] == ["checkpoint-4"]


def test_cancel_request_stops_the_run(tmp_path, data_root):
    config = TrainConfig(**FAST, steps=50, save_steps=100)
    run_id = config.run_id()

    def cancel_at_three(step, total, eta):
        if step == 3:
            Run(run_id, tmp_path).request_cancel()

    run = train(config, root=tmp_path, on_progress=cancel_at_three)
    assert run.status()["state"] == "cancelled"
    assert run.train_log()[-1]["step"] <= 4


def test_one_training_at_a_time(tmp_path):
    with training_slot(tmp_path):
        with pytest.raises(BlockingIOError):
            with training_slot(tmp_path, wait=False):
                pass
    with training_slot(tmp_path, wait=False):  # free again
        pass


@pytest.mark.slow
def test_torchrun_ddp_with_hybrid_sampler(tmp_path, data_root, tiny):
    (tmp_path / "models").symlink_to(Path(tiny.model[0].auto_model.name_or_path).parents[1])
    env = {**os.environ, "HYBRIDVIZ_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "-m", "hybridviz", "train", "--model", "tiny", "--sampler", "hybrid", "--steps", "4",
                             "--batch-size", "8", "--warmup", "0", "--lr", "1e-3", "--languages", "en,de,es"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (status_file,) = list((tmp_path / "runs").glob("*/status.json"))
    status = json.loads(status_file.read_text())
    assert status["state"] == "done" and status["world_size"] == 2 and status["step"] == 4
    assert result.stdout.count("run hybrid") == 1, "only rank 0 reports"


# ------------------------------------------------------------------------------------ user data and guard


def _jsonl(tmp_path, lines):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_import_builds_parallel_pairs(tmp_path):
    from hybridviz.training.data import jsonl_pairs

    path = _jsonl(tmp_path, [
        '{"id": 1, "lang": "en", "query": "who wrote it", "positive": "She wrote it."}',
        '{"id": 1, "lang": "de", "query": "wer schrieb es", "positive": "Sie schrieb es."}',
        '{"id": "b", "lang": "en", "query": "when", "positive": "In 1990."}',
    ])
    pairs = jsonl_pairs(path)
    assert pairs.counts()["per_pair"] == {"de-de": 1, "de-en": 1, "en-de": 1, "en-en": 2}
    assert ("wer schrieb es", "She wrote it.") in zip(pairs.query, pairs.positive)


@pytest.mark.parametrize("line, message", [
    ('{"id": 1, "lang": "en", "query": "q"', "line 2: malformed JSON"),
    ('{"id": 1, "lang": "en", "query": "q"}', "line 2: missing field"),
    ('{"id": 1, "lang": "english", "query": "q", "positive": "p"}', "line 2: lang must be"),
    ('{"id": 1, "lang": "en", "query": "", "positive": "p"}', "line 2: query must be a non-empty"),
    ('{"id": 1, "lang": "en", "query": "q", "positive": 5}', "line 2: positive must be"),
    ('{"id": [1], "lang": "en", "query": "q", "positive": "p"}', "line 2: id must be"),
    ('{"id": 0, "lang": "en", "query": "q", "positive": "p"}', "line 2: id '0' already has a row"),
    ('{"id": 1, "lang": "en", "query": "' + "x" * 10_001 + '", "positive": "p"}', "10,001 characters"),
])
def test_jsonl_import_rejects_bad_rows_with_line_numbers(tmp_path, line, message):
    from hybridviz.errors import DataFormatError
    from hybridviz.training.data import jsonl_pairs

    path = _jsonl(tmp_path, ['{"id": 0, "lang": "en", "query": "q0", "positive": "p0"}', line])
    with pytest.raises(DataFormatError, match=message):
        jsonl_pairs(path)


def test_jsonl_size_limit(tmp_path):
    from hybridviz.errors import DataFormatError
    from hybridviz.training.data import jsonl_pairs

    path = _jsonl(tmp_path, ['{"id": 0, "lang": "en", "query": "q0", "positive": "p0"}'] * 50)
    with pytest.raises(DataFormatError, match="limit"):
        jsonl_pairs(path, max_bytes=1000)


def test_uploaded_training_file_is_size_checked_validated_and_kept_only_when_valid(tmp_path):
    from hybridviz.errors import DataFormatError
    from hybridviz.training.data import jsonl_pairs, save_upload

    good = b'{"id": 1, "lang": "en", "query": "who?", "positive": "Ada."}\n' \
           b'{"id": 1, "lang": "de", "query": "wer?", "positive": "Ada."}\n'
    with pytest.raises(DataFormatError, match="limit"):
        save_upload(good * 100, tmp_path, max_bytes=1000)
    with pytest.raises(DataFormatError, match="line 2"):
        save_upload(good[:70] + b'{"id": 1, "lang": "de"}\n', tmp_path)
    with pytest.raises(DataFormatError, match="empty"):
        save_upload(b"  \n", tmp_path)
    assert list(tmp_path.iterdir()) == [], "a refused upload leaves nothing behind"
    path = save_upload(good, tmp_path)
    assert path.parent == tmp_path and len(jsonl_pairs(path)) == 4 and save_upload(good, tmp_path) == path
    assert TrainConfig(model="tiny", train_data=str(path), steps=1, batch_size=2).validate() is None


def test_zero_shot_guard_refuses_evaluation_texts(tmp_path, data_root):
    from hybridviz.data import load_lareqa

    xq = load_lareqa("xquad-r", ["de"])
    leaked = xq.questions[0].text
    lines = [json.dumps({"id": i, "lang": "en", "query": f"question {i}", "positive": f"answer {i}"})
             for i in range(40)]
    lines.append(json.dumps({"id": "x", "lang": "de", "query": "  " + leaked.upper() + " ", "positive": "p"}))
    config = TrainConfig(**{**FAST, "train_languages": None}, steps=2, train_data=str(_jsonl(tmp_path, lines)))
    with pytest.raises(HybridvizError, match="overlaps the evaluation data.*xquad-r"):
        train(config, root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/config.json"))


def test_default_training_data_passes_the_guard_and_records_unseen_languages(tmp_path, data_root):
    from hybridviz.training.trainer import prepare_run

    run = prepare_run(TrainConfig(model="tiny", steps=20), root=tmp_path)
    cfg = run.config()
    assert cfg["unseen_languages"]["xquad-r"] == ["el", "ru", "th", "tr"]
    assert "zh_cn" not in cfg["unseen_languages"]["mkqa"] and "km" in cfg["unseen_languages"]["mkqa"]
    assert cfg["pairs"]["pairs"] == 15747


def test_zero_shot_guard_reuses_the_evaluation_texts_until_a_data_file_changes(tmp_path, monkeypatch, data_root):
    import gzip
    import os

    from hybridviz.training.data import _evaluation_texts

    (tmp_path / "mkqa").mkdir()
    subset = tmp_path / "mkqa" / "mkqa_subset_merged.jsonl.gz"
    lines = gzip.open(data_root / "mkqa" / "mkqa_subset_merged.jsonl.gz", "rt", encoding="utf-8").readlines()
    subset.write_bytes(gzip.compress("".join(lines[:3]).encode()))
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    first = _evaluation_texts(("mkqa",))
    assert first and _evaluation_texts(("mkqa",)) is first  # unchanged files: the cached set
    subset.write_bytes(gzip.compress("".join(lines[:1]).encode()))
    os.utime(subset, ns=(1, 1))
    second = _evaluation_texts(("mkqa",))
    assert second is not first and 0 < len(second) < len(first)


def test_a_multi_source_mix_trains_through_the_multi_dataset_hook(tmp_path, data_root, tiny):
    config = TrainConfig(**{**FAST, "train_data": "mlqa-r+mintaka", "train_languages": ["en", "de"],
                            "extra": {"source_temperature": 0.5}}, steps=4)
    run = train(config, root=tmp_path)
    assert run.status()["state"] == "done"
    counts = run.config()["pairs"]
    assert set(counts["per_source"]) == {"mlqa-r", "mintaka"} and counts["excluded_groups"] > 0
    with pytest.raises(HybridvizError, match="source temperature"):
        TrainConfig(**{**FAST, "extra": {"source_temperature": 3}}).validate()
    assert TrainConfig(**FAST).run_id() == TrainConfig(**FAST, extra={}).run_id()  # old run ids unchanged


def test_a_mix_trains_each_source_on_the_requested_languages_it_has(data_root):
    """MLQA-R has no French or Japanese; in a mix it gives its en/de pairs and the other sources the rest; a
    language that no source has is an error, as is one MLQA-R lacks when MLQA-R is the only source."""
    from hybridviz.training.trainer import TrainConfigError, load_pairs

    pairs = load_pairs(TrainConfig(train_data="mlqa-r+mintaka", train_languages=["en", "de", "fr", "ja"]))
    by_source = {}
    for origin, q, p in zip(pairs.origin, pairs.query_lang, pairs.passage_lang):
        by_source.setdefault(origin, set()).update((q, p))
    assert by_source["mlqa-r"] == {"en", "de"} and {"fr", "ja"} <= by_source["mintaka"]
    with pytest.raises(TrainConfigError, match="No source .* has xx"):
        load_pairs(TrainConfig(train_data="mlqa-r+mintaka", train_languages=["en", "xx"]))
    with pytest.raises(HybridvizError, match="Unknown language code"):
        load_pairs(TrainConfig(train_data="mlqa-r", train_languages=["en", "fr"]))
