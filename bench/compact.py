"""Compact fine-tuned models: size and fidelity of each delta encoding (hybridviz/encoders/compact.py).

For each fine-tuned run given (default: the seed-0 runs of the committed grid found in cache/runs), every
encoding is applied to the base and the rebuilt model encodes a multilingual sample (XQuAD-R questions and
sentences in all 11 languages, MKQA queries); cosine to the full fine-tuned model's embeddings (fp32) and the
file size are reported. Baseline: the full fine-tuned model (cosine 1, its safetensors size).

    python bench/compact.py [--runs RUN_ID ...] [--encodings lowrank:r=32 int4 ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, write_result  # noqa: E402

ENCODINGS = ["lowrank:r=16", "lowrank:r=64", "lowrank:r=128", "int8", "int4"]


def encode(model, texts):
    q = [t for t, k in texts if k == "query"]
    p = [t for t, k in texts if k == "passage"]
    return np.concatenate([model.encode(["query: " + t for t in q], batch_size=16, normalize_embeddings=True),
                           model.encode(["passage: " + t for t in p], batch_size=16, normalize_embeddings=True)])


def main(argv=None) -> int:
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    from hybridviz.data import paths
    from hybridviz.encoders.compact import apply_delta, make_delta, save_delta
    from hybridviz.encoders.registry import me5_small_dir
    from hybridviz.experiments.ship import fidelity_texts

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="*")
    ap.add_argument("--encodings", nargs="*", default=ENCODINGS)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    runs = args.runs or sorted(p.name for p in paths.RUNS_DIR.glob("*-s0-100st-*") if (p / "model").is_dir())
    queries, passages = fidelity_texts()  # the sample `ship` measures with
    texts = [(t, "query") for t in queries] + [(t, "passage") for t in passages]
    base_dir = me5_small_dir()
    base = load_file(str(base_dir / "model.safetensors"))
    rows = []
    for run in runs:
        tuned_dir = paths.RUNS_DIR / run / "model"
        tuned = SentenceTransformer(str(tuned_dir), device="cpu")
        reference = encode(tuned, texts)
        full_mb = (tuned_dir / "model.safetensors").stat().st_size / 1e6
        rows.append({"run": run, "encoding": "full model (baseline)", "mb": round(full_mb, 2), "cos_min": 1.0,
                     "cos_mean": 1.0})
        tuned_sd = load_file(str(tuned_dir / "model.safetensors"))
        for encoding in args.encodings:
            start = time.perf_counter()
            tensors, info = make_delta(base, tuned_sd, encoding)
            with tempfile.TemporaryDirectory() as tmp:
                path = save_delta(Path(tmp) / "delta.safetensors", tensors, info, {"run": run})
                mb = path.stat().st_size / 1e6
            rebuilt = apply_delta(base, tensors, encoding)
            tuned[0].auto_model.load_state_dict(rebuilt, strict=False)
            cos = np.sum(encode(tuned, texts) * reference, axis=1)
            tuned[0].auto_model.load_state_dict(tuned_sd, strict=False)
            rows.append({"run": run, "encoding": encoding, "mb": round(mb, 2), "cos_min": round(float(cos.min()), 5),
                         "cos_mean": round(float(cos.mean()), 6), "build_s": round(time.perf_counter() - start, 1)})
            print(rows[-1], flush=True)
    write_result(args.out, "compact", {"machine": machine(), "texts": len(texts), "rows": rows,
                                       "baseline": "the full fine-tuned model"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
