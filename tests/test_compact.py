"""Compact fine-tuned models (encoders/compact.py, experiments/ship.py): the delta encodings rebuild the weights,
a rebuilt model embeds like the full one, and the models shipped with the reference bundle are what their
records say and reproduce the bundle's numbers on a slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import slice_check

from hybridviz.encoders.compact import apply_delta, load_delta, make_delta, save_delta

BUNDLE = Path(__file__).resolve().parents[1] / "cache" / "reference" / "sampler-grid"


def test_delta_encodings_rebuild_the_changed_tensors(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(48, 40, generator=g), "b": torch.randn(40, generator=g), "frozen": torch.ones(5)}
    tuned = {"w": base["w"] + 1e-3 * torch.randn(48, 40, generator=g), "b": base["b"] + 0.01, "frozen": torch.ones(5)}
    for encoding, tol in (("lowrank:r=40", 1e-5), ("int8", 1e-3 * 4 / 127), ("int4", 1e-3 * 4 / 7)):
        tensors, info = make_delta(base, tuned, encoding)
        assert info["changed"] == ["w", "b"]  # only what training changed is stored
        tensors, meta = load_delta(save_delta(tmp_path / f"{encoding}.safetensors", tensors, info, {"run": "x"}))
        assert meta["encoding"] == encoding and meta["run"] == "x"
        rebuilt = apply_delta(base, tensors, encoding)
        assert torch.equal(rebuilt["frozen"], base["frozen"])
        assert float((rebuilt["w"] - tuned["w"]).abs().max()) <= tol
        assert torch.allclose(rebuilt["b"], tuned["b"], atol=1e-3)
    with pytest.raises(ValueError):
        make_delta(base, tuned, "zip")


def test_a_rebuilt_model_embeds_like_the_full_one(tmp_path, data_root):
    """A tiny model nudged as a short fine-tune would be, stored as a rank-limited delta: cosine >= .999."""
    from hybridviz.encoders.registry import load_encoder

    full = load_encoder("tiny:0", use_cache=False)
    base_sd = {k: v.clone() for k, v in full.model[0].auto_model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    tuned_sd = {k: v + 2e-3 * v.abs().mean() * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                for k, v in base_sd.items()}
    full.model[0].auto_model.load_state_dict(tuned_sd)
    texts = ["Wer schrieb den Song Let It Be?", "who wrote let it be", "谁写了《顺其自然》", "¿Quién escribió?"]
    reference = full.encode(texts, "query")
    tensors, info = make_delta(base_sd, tuned_sd, "int8")
    full.model[0].auto_model.load_state_dict(apply_delta(base_sd, tensors, "int8"))
    assert np.sum(full.encode(texts, "query") * reference, axis=1).min() >= 0.999


REFERENCE = BUNDLE.parent
SHIPPING = sorted(p.parent.name for p in REFERENCE.glob("*/compact"))  # the main bundle and the robustness ones


def shipped(bundle: Path = BUNDLE):
    return sorted((bundle / "compact").glob("*.json"))


def ref_spec(bundle: str, unit: str) -> str:
    return f"ref:{unit}" if bundle == BUNDLE.name else f"ref:{bundle}/{unit}"


@pytest.mark.parametrize("name", SHIPPING)
@pytest.mark.slow
def test_shipped_models_are_small_faithful_and_load_as_recorded(name):
    from hybridviz.encoders.registry import compact_models, load_encoder

    bundle = REFERENCE / name
    records = [json.loads(p.read_text()) for p in shipped(bundle)]
    assert {r["unit"] for r in records} >= {"x-x-mono-s0", "x-y-s0", "hybrid-s0"}
    manifest = json.loads((bundle / "manifest.json").read_text())
    for r in records:
        path = bundle / "compact" / f"{r['unit']}.safetensors"
        assert path.stat().st_size <= 10e6 and r["cosine_to_full"]["min"] >= 0.999
        assert manifest["units"][r["unit"]]["run_id"] == r["run_id"]
        assert compact_models()[ref_spec(name, r["unit"])[4:]] == path
    first = records[0]
    compact = load_encoder(ref_spec(name, first["unit"]), use_cache=False)
    assert compact.fingerprint == first["compact_fingerprint"]
    assert compact.spec.startswith("ref:") and manifest["spec"].get("model", "me5-small") in compact.label


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPING)
def test_a_shipped_model_reproduces_the_bundle_on_a_slice(name, tmp_path, data_root):
    """ref:x-y-s0 (ref:<bundle>/x-y-s0) re-evaluated on XQuAD-R monolingual German matches the full model's
    committed figures."""
    from hybridviz.evaluate import evaluate
    from hybridviz.experiments.bundle import load_bundle

    committed = load_bundle(REFERENCE / name).get("x-y-s0", "xquad-r")
    check = slice_check(committed.metrics["model"]["precision"], committed.metrics["provenance"].get("machine"))
    report = evaluate(ref_spec(name, "x-y-s0"), "xquad-r", languages=["de"], settings=["mono"], out_dir=tmp_path,
                      precision=check.precision, batch_size=committed.metrics["model"].get("batch_size", 64))
    fresh = report["settings"]["mono"]["per_language"]["de"]["mAP"]
    # the shipped delta adds its own (cosine >= 0.999) approximation to the precision's rounding
    assert fresh == pytest.approx(committed.metrics["settings"]["mono"]["per_language"]["de"]["mAP"],
                                  abs=check.macro_abs + 1e-3)
    import csv

    with open(tmp_path / "per_query_settings.csv", encoding="utf-8") as f:
        now = {r["query_id"]: float(r["ap"]) for r in csv.DictReader(f)}
    before = {q: v for q, v in committed.per_query("mono", "mAP").items() if q.startswith("de:")}
    assert set(now) == set(before)
    assert np.mean([abs(now[q] - before[q]) for q in now]) < max(0.01, check.mean_abs)


@pytest.mark.slow
def test_a_compact_model_of_another_bundle_rebuilds_its_own_base(tmp_path, monkeypatch):
    """A robustness bundle's shipped mUSE unit: `ref:<bundle>/<unit>` rebuilds mUSE (not me5-small) plus the
    delta, embeds like the nudged full model, and keeps mUSE's languages and (empty) prefixes."""
    from hybridviz.data import paths
    from hybridviz.encoders.muse_import import MUSE_LANGUAGES
    from hybridviz.encoders.registry import compact_models, declared_languages, load_encoder

    full = load_encoder("muse", use_cache=False)
    module = full.model[0]
    base_sd = {k: v.clone() for k, v in module.state_dict().items()}
    g = torch.Generator().manual_seed(2)
    # training changes the small matrices and vectors, not the (frozen) embedding tables: nudge those alone
    tuned_sd = {k: v + 2e-3 * v.abs().mean() * torch.randn(v.shape, generator=g)
                if v.is_floating_point() and v.numel() < 2_000_000 else v for k, v in base_sd.items()}
    tensors, info = make_delta(base_sd, tuned_sd, "lowrank:r=48")
    assert 0 < len(info["changed"]) < len(base_sd)
    save_delta(tmp_path / "robustness-x" / "compact" / "x-y-s0.safetensors", tensors, info,
               {"unit": "x-y-s0", "base": "muse", "base_fingerprint": full.fingerprint})
    monkeypatch.setattr(paths, "REFERENCE_DIR", tmp_path)
    assert list(compact_models()) == ["robustness-x/x-y-s0"]  # another bundle's units are named with it
    module.load_state_dict(tuned_sd)
    texts = ["Wer schrieb den Song Let It Be?", "who wrote let it be", "谁写了《顺其自然》", "¿Quién escribió?"]
    reference = full.encode(texts, "query")
    compact = load_encoder("ref:robustness-x/x-y-s0", use_cache=False)
    assert (compact.query_prefix, compact.passage_prefix) == ("", "")
    assert compact.languages == MUSE_LANGUAGES == declared_languages("ref:robustness-x/x-y-s0")
    assert np.sum(compact.encode(texts, "query") * reference, axis=1).min() >= 0.999
    assert compact.fingerprint not in (full.fingerprint, load_encoder("muse", use_cache=False).fingerprint)
