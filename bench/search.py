"""Search latency over every pooled index, the memory they take, and a scaling table exact vs ANN.

    python bench/search.py --out bench/results/search.json [--queries 50] [--sizes 1000,10000,100000]

1. Pools: `PoolIndex.search` (the Search page's code path: query encoded by the base model, exact search) over
   each pool, p50 / p95 over `--queries` benchmark queries after one warm-up query; RSS of this process with the
   model and all pool indexes loaded, against its RSS with the model alone.
2. Scaling: synthetic normalised 384-d candidates in clusters (so that neighbours are meaningful), 1k -> 100k.
   Exact = faiss `IndexFlatIP` (the baseline), ANN = faiss HNSW (M 32, efSearch 64) and IVF-Flat (nlist 4·√N,
   nprobe 8). Per size: build seconds, ms per query (batch of 200), index memory, recall@10 against exact — and
   the time of a full-pool ranking of 1,000 queries (what mAP needs; ANN cannot give it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import print_table, write_result


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2 ** 20


def pool_latency(n_queries: int, model: str = "me5-small") -> tuple[list[dict], dict]:
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.policy import evaluation_precision
    from hybridviz.search import POOLS, PoolIndex, example_queries, load_pool

    encoder = load_encoder(model, precision=evaluation_precision(model))
    encoder.encode(["warm-up"], "query")
    rss_model = _rss_mb()
    rows, indexes = [], []
    for name in POOLS:
        start = time.perf_counter()
        index = PoolIndex.build(encoder, load_pool(name))
        build = time.perf_counter() - start
        indexes.append(index)
        queries = example_queries(index.corpus, n=n_queries, seed=1)
        index.search(queries[0], 10)  # first query: lazy imports, thread pools
        times = []
        for q in queries:
            start = time.perf_counter()
            index.search(q, 10)
            times.append((time.perf_counter() - start) * 1000)
        rows.append({"pool": name, "candidates": len(index.corpus.cand_ids), "index_build_s": build,
                     "p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
                     "queries": len(times)})
    memory = {"rss_model_only_mb": rss_model, "rss_all_pools_mb": _rss_mb(),
              "peak_rss_mb": _peak_rss_mb()}
    return rows, memory


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n: int, dim: int, rng: np.random.Generator, centers: np.ndarray) -> np.ndarray:
    x = centers[rng.integers(0, len(centers), n)] + rng.normal(0, 0.6 / np.sqrt(dim), (n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def scaling(sizes: list[int], dim: int = 384, n_queries: int = 200, seed: int = 0) -> list[dict]:
    import faiss

    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (max(64, max(sizes) // 100), dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    queries = synthetic(n_queries, dim, rng, centers)
    rows = []
    for n in sizes:
        data = synthetic(n, dim, rng, centers)
        exact = faiss.IndexFlatIP(dim)
        start = time.perf_counter()
        exact.add(data)
        build = time.perf_counter() - start
        start = time.perf_counter()
        _, truth = exact.search(queries, 10)
        per_query = (time.perf_counter() - start) * 1000 / n_queries
        full = _full_ranking_seconds(data, rng)
        base = {"candidates": n, "index": "exact (IndexFlatIP)", "build_s": build, "ms_per_query": per_query,
                "speed-up": 1.0, "memory_mb": len(faiss.serialize_index(exact)) / 2 ** 20, "recall@10": 1.0,
                "full_ranking_1000q_s": full}
        rows.append(base)
        hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        nlist = max(4, int(4 * np.sqrt(n)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        for label, index in (("HNSW (M 32, efSearch 64)", hnsw), (f"IVF-Flat (nlist {nlist}, nprobe 8)", ivf)):
            start = time.perf_counter()
            if not index.is_trained:
                index.train(data)
            index.add(data)
            build = time.perf_counter() - start
            if label.startswith("HNSW"):
                index.hnsw.efSearch = 64
            else:
                index.nprobe = 8
            start = time.perf_counter()
            _, found = index.search(queries, 10)
            ms = (time.perf_counter() - start) * 1000 / n_queries
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
            rows.append({"candidates": n, "index": label, "build_s": build, "ms_per_query": ms,
                         "speed-up": per_query / ms, "memory_mb": len(faiss.serialize_index(index)) / 2 ** 20,
                         "recall@10": float(recall), "full_ranking_1000q_s": None})
    return rows


def _full_ranking_seconds(data: np.ndarray, rng: np.random.Generator, n: int = 1000) -> float:
    """Score and fully rank the pool for 1,000 queries in blocks of 256 (what an mAP evaluation does)."""
    queries = data[rng.integers(0, len(data), n)]
    start = time.perf_counter()
    for block in range(0, n, 256):
        np.argsort(-(queries[block : block + 256] @ data.T), axis=1)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--model", default="me5-small")
    p.add_argument("--skip-pools", action="store_true", help="only the synthetic scaling table")
    p.add_argument("--out", default="bench/results/search.json")
    args = p.parse_args()
    pools, memory = ([], {}) if args.skip_pools else pool_latency(args.queries, args.model)
    table = scaling([int(x) for x in args.sizes.split(",")])
    write_result(args.out, "search", {"model": args.model, "pools": pools, "memory": memory, "scaling": table,
                                      "baseline": "exact faiss IndexFlatIP"})
    if pools:
        print_table(f"search latency per pool ({args.model}, query encoding included)", pools,
                    ["pool", "candidates", "index_build_s", "p50_ms", "p95_ms"])
        print(f"RSS: model only {memory['rss_model_only_mb']:.0f} MB, with all pools "
              f"{memory['rss_all_pools_mb']:.0f} MB (peak {memory['peak_rss_mb']:.0f} MB)")
    print_table("scaling: exact vs ANN (synthetic 384-d, 200 queries)", table,
                ["candidates", "index", "build_s", "ms_per_query", "speed-up", "memory_mb", "recall@10",
                 "full_ranking_1000q_s"])


if __name__ == "__main__":
    main()
