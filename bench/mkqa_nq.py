"""What `mkqa-nq` (BGE-M3's protocol over BEIR NQ's 2.68M passages) costs on this machine, measured on a sample.

    python bench/mkqa_nq.py --out bench/results/mkqa_nq.json [--model me5-small] [--passages 1000]

No NQ passage is available offline, so the sample is built from English XQuAD-R sentences (Wikipedia): passage j
joins the sentences from the j-th on until it has at least `--words` words (all distinct) (BEIR NQ passages are ~100-word Wikipedia chunks) and written as a
BEIR corpus.jsonl. Measured: `mkqa_nq.encode_corpus` (the protocol's sharded encoder, evaluation precision, no
embedding cache) against plain `SentenceTransformer.encode` of the same texts (fp32, default settings), in
seconds per 1,000 passages; both extrapolated to 2,681,468 passages. Exact search (faiss IndexFlatIP) is timed on
200,000 random unit vectors for 1,000 queries (top 100) and scaled linearly to NQ's size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from common import print_table, write_result

NQ_PASSAGES = 2_681_468
SEARCH_BLOCK = 200_000  # random unit vectors: exact search time per 1,000 queries, scaled linearly to NQ


def sample_corpus(folder: Path, n: int, words: int) -> Path:
    from hybridviz.data.lareqa import load_lareqa

    sentences = [s.text for s in load_lareqa("xquad-r", ["en"]).sentences]
    rows = []
    for start in range(n):  # a window from each start: n distinct passages (the encoder de-duplicates texts)
        current, i = [], start
        while sum(len(s.split()) for s in current) < words:
            current.append(sentences[i % len(sentences)])
            i += 1
        rows.append({"_id": f"s{start}", "title": "Sample", "text": " ".join(current)})
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(model: str, n: int, words: int) -> dict:
    import faiss

    from hybridviz import mkqa_nq
    from hybridviz.data.nq import read_corpus
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.policy import evaluation_precision

    with tempfile.TemporaryDirectory() as tmp:
        path = sample_corpus(Path(tmp), n, words)
        texts = [p.text for p in read_corpus(path)]
        encoder = load_encoder(model, use_cache=False, precision=evaluation_precision(model))
        encoder.encode(texts[:8], "passage")  # warm-up
        saved, mkqa_nq.NQ_DIR = mkqa_nq.NQ_DIR, Path(tmp) / "shards"
        try:
            folder, encoded, ours = mkqa_nq.encode_corpus(encoder, path)
            start = time.perf_counter()
            index, _ = mkqa_nq.build_index(folder)
            build = time.perf_counter() - start
        finally:
            mkqa_nq.NQ_DIR = saved
        plain = encoder.model
        start = time.perf_counter()
        plain.encode([encoder.passage_prefix + t for t in texts], normalize_embeddings=True)
        naive = time.perf_counter() - start
        rng = np.random.default_rng(0)
        block = rng.normal(size=(SEARCH_BLOCK, index.d)).astype(np.float32)  # the arithmetic is what scales
        queries = rng.normal(size=(1000, index.d)).astype(np.float32)
        faiss.normalize_L2(block)
        faiss.normalize_L2(queries)
        flat = faiss.IndexFlatIP(index.d)
        flat.add(block)
        start = time.perf_counter()
        flat.search(queries, 100)
        search = time.perf_counter() - start
    mean_words = float(np.mean([len(t.split()) for t in texts]))
    rows = [{"path": "plain SentenceTransformer.encode (fp32)", "s_per_1000": naive / n * 1000, "ratio": 1.0,
             "hours_for_nq": naive / n * NQ_PASSAGES / 3600},
            {"path": f"mkqa_nq.encode_corpus ({evaluation_precision(model)}, shards)", "s_per_1000": ours / n * 1000,
             "ratio": naive / ours, "hours_for_nq": ours / n * NQ_PASSAGES / 3600}]
    return {"model": model, "passages": n, "mean_words": mean_words,
            "baseline": "plain SentenceTransformer.encode of the same passages", "rows": rows,
            "exact_search": {"index_build_s": build, "vectors": SEARCH_BLOCK, "queries": 1000, "top": 100,
                             "seconds": search, "scaled_to_nq_s_per_1000_queries": search * NQ_PASSAGES / SEARCH_BLOCK}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--passages", type=int, default=1000)
    p.add_argument("--words", type=int, default=100)
    p.add_argument("--out", default="bench/results/mkqa_nq.json")
    args = p.parse_args()
    result = run(args.model, args.passages, args.words)
    write_result(args.out, "mkqa_nq", result)
    print_table(f"mkqa-nq corpus encoding, {args.model}, {args.passages} sample passages of "
                f"{result['mean_words']:.0f} words (extrapolated to {NQ_PASSAGES:,})", result["rows"],
                ["path", "s_per_1000", "ratio", "hours_for_nq"])
    s = result["exact_search"]
    print(f"exact search: {s['seconds']:.2f} s for 1,000 queries over {s['vectors']:,} vectors; scaled to NQ: "
          f"{s['scaled_to_nq_s_per_1000_queries']:.0f} s per 1,000 queries")


if __name__ == "__main__":
    main()
