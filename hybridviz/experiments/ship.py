"""Ship compact fine-tuned models with a result bundle: `<bundle>/compact/<unit>.safetensors` (a delta from the
base, encoders/compact.py) and `<unit>.json` (what it is and how close it stays to the full model).

    python -m hybridviz ship cache/reference/sampler-grid --units x-x-mono-s0,x-y-s0,hybrid-s0

The full fine-tuned weights must be on this machine (cache/runs); a fresh clone loads the compact ones as
`ref:<unit>` (Search and the Embedding map list them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hybridviz.data import paths
from hybridviz.encoders.compact import make_delta, save_delta
from hybridviz.encoders.registry import compact_models, load_encoder, local_model_dir
from hybridviz.errors import HybridvizError
from hybridviz.fileio import write_json_atomic
from hybridviz.provenance import provenance
from hybridviz.tasks import build_corpus

DEFAULT_ENCODING = "lowrank:r=48"  # bench/compact.py: 8.2 MB, cosine >= .9997 to the full model (r=32: .9995)
MAX_MB = 10.0


def fidelity_texts(per_language: int = 12) -> tuple[list[str], list[str]]:
    """A multilingual sample (XQuAD-R questions and sentences, 11 languages; MKQA queries, 17): (queries, passages)."""
    xq = build_corpus("xquad-r", limit=per_language, seed=1)
    mk = build_corpus("mkqa-queries", limit=per_language, seed=1)
    return list(xq.query_texts) + list(mk.query_texts), list(xq.cand_texts[: 11 * per_language])


def cosines(a, b, texts: tuple[list[str], list[str]]) -> np.ndarray:
    queries, passages = texts
    return np.concatenate([np.sum(a.encode(queries, "query") * b.encode(queries, "query"), axis=1),
                           np.sum(a.encode(passages, "passage") * b.encode(passages, "passage"), axis=1)])


def ship(bundle: Path, units: list[str], encoding: str = DEFAULT_ENCODING, precision: str = "fp32") -> list[dict]:
    from safetensors.torch import load_file

    bundle = Path(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    base_spec = manifest.get("spec", {}).get("model", "me5-small")
    base = load_encoder(base_spec, use_cache=False)
    base_weights = load_file(str(local_model_dir(base_spec) / "model.safetensors"))
    texts = fidelity_texts()
    out = []
    for unit in units:
        state = manifest.get("units", {}).get(unit)
        if not state or not state.get("run_id"):
            raise HybridvizError(f"{bundle} has no fine-tuned unit {unit!r}.")
        run_dir = paths.RUNS_DIR / state["run_id"] / "model"
        if not (run_dir / "model.safetensors").exists():
            raise HybridvizError(f"The weights of {unit} ({state['run_id']}) are not on this machine; "
                                 f"rerun the grid to train them, then ship.")
        tensors, info = make_delta(base_weights, load_file(str(run_dir / "model.safetensors")), encoding)
        full = load_encoder(f"run:{state['run_id']}", use_cache=False, precision=precision)
        path = save_delta(bundle / "compact" / f"{unit}.safetensors", tensors, info,
                          {"unit": unit, "run_id": state["run_id"], "base": base_spec,
                           "base_fingerprint": base.fingerprint, "full_fingerprint": full.fingerprint})
        name = next(n for n, p in compact_models(bundle.parent).items() if p == path)
        compact = load_encoder(f"ref:{name}", use_cache=False, precision=precision)
        cos = cosines(compact, full, texts)
        record = {"unit": unit, "spec": f"ref:{name}", "base": base_spec, "run_id": state["run_id"],
                  "encoding": encoding,
                  "mb": round(path.stat().st_size / 1e6, 2), "changed_tensors": len(info["changed"]),
                  "cosine_to_full": {"min": float(cos.min()), "mean": float(cos.mean()), "texts": int(cos.size),
                                     "precision": precision},
                  "full_fingerprint": full.fingerprint, "compact_fingerprint": compact.fingerprint,
                  "provenance": provenance(None)}
        if record["mb"] > MAX_MB:
            path.unlink()
            raise HybridvizError(f"{unit}: the {encoding} delta is {record['mb']} MB, over {MAX_MB} MB.")
        write_json_atomic(path.with_suffix(".json"), record)
        out.append(record)
    return out
