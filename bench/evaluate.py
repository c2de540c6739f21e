"""Full XQuAD-R multilingual evaluation of one encoder: hybridviz cold and warm vs the naive path.

    python bench/evaluate.py --out bench/results/evaluate.json [--model me5-small] [--languages all]

Naive (the baseline): plain `SentenceTransformer.encode` of every question and candidate sentence (default
settings), one numpy score matrix per block of queries, a full argsort per query and average precision over the
whole pool — what one would write without hybridviz. Ours: `hybridviz.evaluate.evaluate(model, "xquad-r",
settings=["multi"])` with an empty embedding cache (cold) and again with the cache it filled (warm), at each
`--precisions`. Both report the multilingual mAP, so the figures can be seen to agree.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from common import print_table, write_result


def naive_multilingual_map(model_folder: str, languages: list[str] | None, prefixes: tuple[str, str]) -> float:
    from sentence_transformers import SentenceTransformer

    from hybridviz.data.lareqa import load_lareqa

    data = load_lareqa("xquad-r", languages)
    model = SentenceTransformer(model_folder, device="cpu")
    q = model.encode([prefixes[0] + x.text for x in data.questions], normalize_embeddings=True)
    c = model.encode([prefixes[1] + s.text for s in data.sentences], normalize_embeddings=True)
    by_group: dict[str, list[int]] = {}
    for i, s in enumerate(data.sentences):
        for g in s.groups:
            by_group.setdefault(g, []).append(i)
    aps = []
    for start in range(0, len(q), 256):
        scores = q[start : start + 256] @ c.T
        for row, question in zip(scores, data.questions[start : start + 256]):
            relevant = np.zeros(len(c), bool)
            relevant[by_group[question.group]] = True
            order = np.argsort(-row, kind="stable")
            hits = relevant[order]
            ranks = np.flatnonzero(hits) + 1
            aps.append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
    return float(np.mean(aps))


def run(model: str, languages: list[str] | None, precisions: list[str]) -> dict:
    from hybridviz import evaluate as ev
    from hybridviz.data import paths
    from hybridviz.encoders import load_encoder

    from encode import _folder

    base = load_encoder(model, use_cache=False)
    start = time.perf_counter()
    naive = naive_multilingual_map(_folder(model), languages, (base.query_prefix, base.passage_prefix))
    naive_s = time.perf_counter() - start
    rows = [{"path": "naive: plain ST encode + numpy (fp32)", "seconds": naive_s, "speed-up": 1.0, "multi_mAP": naive}]
    for precision in precisions:
        with tempfile.TemporaryDirectory() as cache_dir:
            saved, paths.EMBEDDINGS_DIR = paths.EMBEDDINGS_DIR, cache_dir
            try:
                for state in ("cold", "warm"):
                    start = time.perf_counter()
                    report = ev.evaluate(model, "xquad-r", languages=languages, settings=["multi"],
                                         precision=precision)
                    seconds = time.perf_counter() - start
                    per_lang = report["settings"]["multi"]["per_language"]
                    counts = report["settings"]["multi"]["n_queries"]
                    micro = sum(per_lang[x]["mAP"] * counts[x] for x in counts) / sum(counts.values())
                    rows.append({"path": f"hybridviz {precision}, {state} cache", "seconds": seconds,
                                 "speed-up": naive_s / seconds, "multi_mAP": micro})
            finally:
                paths.EMBEDDINGS_DIR = saved
    return {"model": model, "languages": languages or "all 11", "baseline": "naive encode-everything + numpy",
            "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--languages", default="all", help="comma-separated XQuAD-R languages, or all")
    p.add_argument("--precisions", default="bf16,int8")
    p.add_argument("--out", default="bench/results/evaluate.json")
    args = p.parse_args()
    languages = None if args.languages == "all" else args.languages.split(",")
    result = run(args.model, languages, args.precisions.split(","))
    write_result(args.out, "evaluate", result)
    print_table(f"XQuAD-R multilingual evaluation, {args.model} (speed-up vs naive)", result["rows"],
                ["path", "seconds", "speed-up", "multi_mAP"])


if __name__ == "__main__":
    main()
