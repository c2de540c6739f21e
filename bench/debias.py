"""What a training-free debiasing method costs beside encoding: fit and apply time as ratios to encoding time.

    python bench/debias.py --out bench/results/debias.json [--model me5-small] [--n 512]

Baseline: encoding with the model itself (the evaluation precision, empty embedding cache), measured on `--n`
XQuAD-R sentences and expressed per 1,000 texts. Per method (the committed sweep's K / R):
  fit   = `debias.fit` on the embeddings of its training-side texts (MLQA-R dev, as the grid fits it; the
          embeddings come from the cache, so this is the method's own arithmetic), against encoding those texts;
  apply = `Debiaser.transform` of the XQuAD-R pool's embeddings (13,014 sentences, with their languages),
          against encoding that pool.
A ratio of 0.01 means the method adds 1 % to the encoding it follows.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from common import print_table, write_result


def encode_seconds_per_1000(model: str, n: int) -> float:
    from hybridviz.data import paths
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.policy import evaluation_precision
    from hybridviz.tasks import build_corpus

    texts = build_corpus("xquad-r").cand_texts[:n]
    encoder = load_encoder(model, precision=evaluation_precision(model))
    with tempfile.TemporaryDirectory() as empty:
        saved, paths.EMBEDDINGS_DIR = paths.EMBEDDINGS_DIR, empty
        try:
            encoder.encode(texts[:16], "passage")  # warm-up: thread pools, bf16 copy
            start = time.perf_counter()
            encoder.encode(texts[16:], "passage")
            seconds = time.perf_counter() - start
        finally:
            paths.EMBEDDINGS_DIR = saved
    return seconds / (len(texts) - 16) * 1000


def run(model: str, n: int, repeats: int, limit: int | None = None) -> dict:
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.debias import METHODS, fit, parse_method, training_side_texts
    from hybridviz.encoders.policy import evaluation_precision
    from hybridviz.tasks import build_corpus

    per_1000 = encode_seconds_per_1000(model, n)
    encoder = load_encoder(model, precision=evaluation_precision(model))
    texts = training_side_texts()
    if limit is not None:  # smoke runs: the first texts of each side only
        rng = np.random.default_rng(0)  # a seeded sample of each side: every language stays in
        keep = sorted(i for kind in ("query", "passage")
                      for i in rng.permutation(np.flatnonzero(np.asarray(texts.kinds) == kind))[:limit])
        texts.texts, texts.langs, texts.kinds = ([getattr(texts, f)[i] for i in keep]
                                                 for f in ("texts", "langs", "kinds"))
    kinds = np.asarray(texts.kinds)
    x = np.zeros((len(texts.texts), encoder.model.get_embedding_dimension()), dtype=np.float32)
    for kind in ("query", "passage"):
        idx = np.flatnonzero(kinds == kind)
        x[idx] = encoder.encode([texts.texts[i] for i in idx], kind, progress=True)
    pool = build_corpus("xquad-r")
    pool_texts, pool_langs = pool.cand_texts[:limit], pool.cand_langs[:limit]
    pool_x = encoder.encode(pool_texts, "passage", progress=True)
    rows = []
    for method in METHODS:
        spec = parse_method(method)
        fit_times, apply_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            fitted = fit(spec, x, texts.langs, texts.kinds, texts.source)
            fit_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            fitted.transform(pool_x, "passage", pool_langs)
            apply_times.append(time.perf_counter() - start)
        fit_s, apply_s = float(np.median(fit_times)), float(np.median(apply_times))
        encode_fit_s = per_1000 * len(texts.texts) / 1000
        encode_pool_s = per_1000 * len(pool_texts) / 1000
        rows.append({"method": spec.name, "fit_texts": len(texts.texts), "fit_s": fit_s,
                     "encode_fit_texts_s": encode_fit_s, "fit_ratio": fit_s / encode_fit_s,
                     "pool_texts": len(pool_texts), "apply_s": apply_s, "encode_pool_s": encode_pool_s,
                     "apply_ratio": apply_s / encode_pool_s})
    return {"model": model, "encode_s_per_1000": per_1000, "encode_sample": n,
            "baseline": "encoding the same texts with the model (evaluation precision, empty cache)", "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--n", type=int, default=512, help="XQuAD-R sentences encoded to time the baseline")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--limit", type=int, help="a sample of N fit texts per side and the first N pool texts (smoke)")
    p.add_argument("--out", default="bench/results/debias.json")
    args = p.parse_args()
    result = run(args.model, args.n, args.repeats, args.limit)
    write_result(args.out, "debias", result)
    print(f"encoding: {result['encode_s_per_1000']:.1f} s per 1,000 texts ({args.model}, {args.n} sentences)")
    print_table("training-free methods: fit and apply against encoding (ratio = method / encoding)", result["rows"],
                ["method", "fit_texts", "fit_s", "encode_fit_texts_s", "fit_ratio", "pool_texts", "apply_s",
                 "encode_pool_s", "apply_ratio"])


if __name__ == "__main__":
    main()
