"""Headless evaluation: one encoder on one task, every setting, written as `metrics.json` + `per_query.jsonl`.

`metrics.json` holds, per setting, every metric per query language and macro-averaged (cross-lingual: per
ordered pair too), the query-language x candidate-language matrices, the bias figures of the multilingual
setting, the model spec and fingerprint, the data files with checksums, counts, timings and provenance.
`per_query.jsonl` has one line per query of the multilingual setting: `query_id`, `query_lang`, `ap`, the other
per-query metrics, and `relevant` = [{candidate_id, lang, rank}] with 1-based pessimistic ranks in the pool.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from hybridviz import metrics as M
from hybridviz.metrics import TOP_K_SHARE
from hybridviz.index import ExactIndex, top_k
from hybridviz.provenance import provenance
from hybridviz.results.store import write_outputs
from hybridviz.tasks import SETTINGS, Corpus, Slice, build_corpus, setting_applicable, slices
from hybridviz.errors import UnknownName

RANK_CORRELATION_SAMPLE = 2000
BLOCK = 128
RANK_BLOCK = 1024


def _log(msg: str, log: Callable[[str], None] | None) -> None:
    if log:
        log(msg)


def evaluate_slice(s: Slice, Q: np.ndarray, C: np.ndarray, corpus: Corpus, bias: bool) -> list[dict]:
    """Per-query metrics (and relevant ranks) for one slice; exact search over the slice's whole pool."""
    index = ExactIndex(C[s.pool], backend="numpy")  # full score matrices are needed; faiss would only copy
    pool_langs = np.asarray(corpus.cand_langs)[s.pool]
    rows = []
    for start in range(0, len(s.queries), BLOCK):
        qpos = s.queries[start : start + BLOCK]
        rel = s.relevant[start : start + BLOCK]
        scores = index.scores(Q[qpos])
        if s.own is not None:  # a query never competes with itself (mkqa-queries)
            own = s.own[start : start + BLOCK]
            scores[np.flatnonzero(own >= 0), own[own >= 0]] = -np.inf
        if s.excluded is not None:  # removed from this query's ranking (mkqa-answers: its string copies)
            for i, gone in enumerate(s.excluded[start : start + BLOCK]):
                scores[i, gone] = -np.inf
        ranks = M.block_ranks(scores, rel)
        values = M.block_metrics(ranks, with_bias=bias)
        top = top_k(scores, TOP_K_SHARE)[1] if bias else None  # from the scores in hand, not a 2nd search
        for i, q in enumerate(qpos):
            row = {"query": int(q), "ranks": ranks[i], "relevant": rel[i],
                   **{name: float(v[i]) for name, v in values.items()}}
            if bias:
                row["top_langs"] = pool_langs[top[i]]
                row[f"same_lang@{TOP_K_SHARE}"] = M.same_language_share(row["top_langs"], corpus.query_langs[q])
            rows.append(row)
    return rows


def rank_correlation(corpus: Corpus, s: Slice, Q: np.ndarray, C: np.ndarray, seed: int = 0) -> dict:
    """Mean Spearman correlation between the pool rankings of parallel queries in different languages.

    Computed over a fixed seeded sample of at most RANK_CORRELATION_SAMPLE pool candidates (exact ranking of
    the whole pool for every query would cost queries x pool memory on large pools).
    """
    rng = np.random.default_rng(seed)
    pool = s.pool if len(s.pool) <= RANK_CORRELATION_SAMPLE else \
        np.sort(rng.choice(s.pool, RANK_CORRELATION_SAMPLE, replace=False))
    sample = C[pool]
    members: dict[str, list[int]] = {}
    for q in s.queries:
        members.setdefault(corpus.query_groups[q], []).append(int(q))
    groups = [qs for qs in members.values() if len({corpus.query_langs[q] for q in qs}) >= 2]
    per_query_values, per_query_langs = [], []
    # Groups in chunks of ~RANK_BLOCK queries: one matrix product and one ranking per chunk instead of one per
    # group (a thousand tiny BLAS calls cost more than the arithmetic); each group's correlations are unchanged.
    start = 0
    while start < len(groups):
        stop, size = start, 0
        while stop < len(groups) and (size == 0 or size + len(groups[stop]) <= RANK_BLOCK):
            size += len(groups[stop])
            stop += 1
        chunk = groups[start:stop]
        flat = [q for qs in chunk for q in qs]
        ranked = M.standardised_ranks(Q[flat] @ sample.T)
        offset = 0
        for qs in chunk:
            corr = ranked[offset : offset + len(qs)] @ ranked[offset : offset + len(qs)].T
            offset += len(qs)
            langs = [corpus.query_langs[q] for q in qs]
            for i in range(len(qs)):
                others = [j for j in range(len(qs)) if langs[j] != langs[i]]
                per_query_values.append(float(corr[i, others].mean()))
                per_query_langs.append(langs[i])
        start = stop
    per_lang, macro = M.macro_average(per_query_values, per_query_langs)
    return {"per_language": per_lang, "macro": macro, "pool_sample": int(len(pool)),
            "queries": len(per_query_values)}


def _aggregate(rows: list[dict], langs: list[str], names: list[str]) -> dict:
    out = {"per_language": {}, "macro": {}}
    for name in names:
        per, macro = M.macro_average([r[name] for r in rows], langs)
        for lang, v in per.items():
            out["per_language"].setdefault(lang, {})[name] = v
        out["macro"][name] = macro
    out["n_queries"] = {lang: langs.count(lang) for lang in sorted(set(langs))}
    return out


def evaluate_setting(corpus: Corpus, setting: str, Q: np.ndarray, C: np.ndarray,
                     log: Callable[[str], None] | None = None) -> tuple[dict, list[dict]]:
    names = list(M.RANK_METRICS)
    bias = setting == "multi"
    result: dict = {"dropped_queries": 0}
    if setting == "cross":
        pair_results, per_x = {}, {}
        per_query: dict[int, list[dict]] = {}
        pair_ap: dict[tuple[int, str], float] = {}
        for s in slices(corpus, setting):
            rows = evaluate_slice(s, Q, C, corpus, bias=False)
            for r in rows:
                per_query.setdefault(r["query"], []).append(r)
                pair_ap[(r["query"], s.pool_lang)] = r["mAP"]
            result["dropped_queries"] += s.dropped
            agg = _aggregate(rows, [s.query_lang] * len(rows), names)
            pair_results[f"{s.query_lang}->{s.pool_lang}"] = {**agg["macro"], "n_queries": len(rows),
                                                              "pool": int(len(s.pool))}
            per_x.setdefault(s.query_lang, []).append(agg["macro"])
        # Paper convention: average the pairs of each query language, then over query languages.
        result["pairs"] = pair_results
        result["_pair_ap"] = pair_ap  # per query and target language; popped by evaluate()
        result["per_language"] = {x: {n: float(np.mean([p[n] for p in ps])) for n in names}
                                  for x, ps in sorted(per_x.items())}
        result["macro"] = {n: float(np.mean([v[n] for v in result["per_language"].values()])) for n in names}
        # per query: the mean over its target languages (what paired significance tests compare)
        return result, [{"query": q, **{n: float(np.mean([r[n] for r in rs])) for n in names}}
                        for q, rs in sorted(per_query.items())]

    if bias:
        names = names + ["max_rank_distance", f"same_lang@{TOP_K_SHARE}"]
    rows_all, langs_all = [], []
    for s in slices(corpus, setting):
        _log(f"  {setting} {s.query_lang}: {len(s.queries)} queries x {len(s.pool)} candidates", log)
        rows = evaluate_slice(s, Q, C, corpus, bias=bias)
        result["dropped_queries"] += s.dropped
        rows_all += rows
        langs_all += [corpus.query_langs[r["query"]] for r in rows]
        if bias:
            result["pool"] = int(len(s.pool))
            result["mean_rank_correlation"] = rank_correlation(corpus, s, Q, C)
            result["pair_matrices"] = multilingual_pair_matrices(rows_all, corpus)
    result.update(_aggregate(rows_all, langs_all, names))
    return result, rows_all


def multilingual_pair_matrices(rows: list[dict], corpus: Corpus) -> dict:
    """Bias by language pair in the pooled ranking: for queries in X, the mean rank of their relevant
    candidates in Y, and the share of their top 10 that is in Y (macro over queries of X)."""
    langs = corpus.languages
    at = {lang: i for i, lang in enumerate(langs)}
    n, L = len(rows), len(langs)
    cand_lang = np.array([at[lang] for lang in corpus.cand_langs])
    x = np.array([at[corpus.query_langs[r["query"]]] for r in rows], dtype=np.int64)
    # every relevant item as (row, its language, its rank): per-row means by language, then summed per query language
    sizes = np.array([len(r["relevant"]) for r in rows], dtype=np.int64)
    row_of = np.repeat(np.arange(n), sizes)
    relevant = np.concatenate([np.asarray(r["relevant"], dtype=np.int64) for r in rows]) if n else np.zeros(0, int)
    ranks = np.concatenate([np.asarray(r["ranks"], dtype=float) for r in rows]) if n else np.zeros(0)
    per_row_sum, per_row_n = np.zeros((n, L)), np.zeros((n, L))
    np.add.at(per_row_sum, (row_of, cand_lang[relevant]), ranks)
    np.add.at(per_row_n, (row_of, cand_lang[relevant]), 1)
    has = per_row_n > 0
    rank_sum, rank_n = np.zeros((L, L)), np.zeros((L, L))
    np.add.at(rank_sum, x, np.divide(per_row_sum, per_row_n, out=np.zeros_like(per_row_sum), where=has))
    np.add.at(rank_n, x, has.astype(float))
    n_queries = np.bincount(x, minlength=L).astype(float)
    share_sum = np.zeros((L, L))
    for r, xi in zip(rows, x):  # top lists are short: one bincount per row
        if len(r["top_langs"]):
            share_sum[xi] += np.bincount([at[lang] for lang in r["top_langs"]], minlength=L) / len(r["top_langs"])
    mean_rank = np.divide(rank_sum, rank_n, out=np.full_like(rank_sum, np.nan), where=rank_n > 0)
    share = share_sum / np.maximum(n_queries, 1)[:, None]

    def matrix(values):
        return {"rows": langs, "cols": langs,
                "values": [[None if np.isnan(v) else float(v) for v in row] for row in values]}

    return {"multi: mean rank of relevant": matrix(mean_rank),
            f"multi: top-{TOP_K_SHARE} share": matrix(share)}


def _matrices(settings: dict, langs: list[str]) -> dict:
    """Query-language x candidate-language matrix per metric: mono on the diagonal, cross off it."""
    out = {}
    mono, cross = settings.get("mono", {}), settings.get("cross", {})
    for name in M.RANK_METRICS:
        values = []
        for x in langs:
            row = []
            for y in langs:
                if x == y:
                    v = mono.get("per_language", {}).get(x, {}).get(name)
                else:
                    v = cross.get("pairs", {}).get(f"{x}->{y}", {}).get(name)
                row.append(v)
            values.append(row)
        out[name] = {"rows": langs, "cols": langs, "values": values}
    return out


def evaluate(model: str, task: str, languages: list[str] | None = None, settings: list[str] | None = None,
             out_dir: str | os.PathLike | None = None, limit: int | None = None, seed: int = 0,
             batch_size: int | None = None, encoder=None, log: Callable[[str], None] | None = None,
             precision: str | None = None, layouts: str | os.PathLike | None = None, on_progress=None,
             sample_pool: bool = False) -> dict:
    """Evaluate `model` on `task`; write metrics.json and the per-query figures to `out_dir` when given (in a
    result bundle, pass its `layouts` folder: the compact encoding, with what models share kept there once).

    `precision` "bf16" encodes with a bfloat16 copy of the model (faster on CPUs with native bf16; embeddings
    within cosine 0.998 of fp32 on XQuAD-R sentences); it is recorded in the report. None: the policy's default
    for `model` (encoders/policy.py: bf16 where this machine computes it natively, else fp32; fp32 for tiny and
    muse); a given `encoder` keeps its own.
    """
    settings = list(settings or SETTINGS)
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise UnknownName(f"Unknown setting(s) {', '.join(bad)}; choose from {', '.join(SETTINGS)}.")
    timings = {}
    t0 = time.perf_counter()
    if encoder is None:
        from hybridviz.encoders import load_encoder
        from hybridviz.encoders.policy import default_precision

        # lazy: warm, the weights are never read
        encoder = load_encoder(model, precision=precision or default_precision(model), lazy=True)
    timings["load_model_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    corpus = build_corpus(task, languages, limit, seed, sample_pool)
    supported = getattr(encoder, "languages", None)
    unsupported = [x for x in corpus.languages if supported is not None and x not in supported]
    if unsupported:  # a model's unsupported languages are left out and named, never averaged in
        corpus = build_corpus(task, [x for x in corpus.languages if x not in unsupported], limit, seed, sample_pool)
        corpus.notes = {**corpus.notes, "unsupported_languages": unsupported}
        _log(f"{encoder.label} does not support {', '.join(unsupported)}: not evaluated", log)
    timings["load_data_s"] = time.perf_counter() - t0
    _log(f"{task}: {len(corpus.query_ids)} queries, {len(corpus.cand_ids)} candidates, "
         f"languages {', '.join(corpus.languages)}", log)

    t0 = time.perf_counter()
    if batch_size is None:
        from hybridviz.encoders.registry import ENCODE_BATCH

        batch_size = ENCODE_BATCH
    encoder.prepare(corpus)  # an index-time debiasing method fits on this pool (texts and languages only)

    def stage(name):  # `on_progress(stage, done, total)`: encoding progress for a caller's progress bar
        return None if on_progress is None else (lambda done, total: on_progress(name, done, total))

    Q = encoder.encode(corpus.query_texts, "query", batch_size=batch_size, langs=corpus.query_langs,
                       on_progress=stage("encoding questions"))
    timings["encode_queries_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    C = encoder.encode(corpus.cand_texts, corpus.candidate_kind, batch_size=batch_size, langs=corpus.cand_langs,
                       on_progress=stage("encoding the pool"))
    timings["encode_candidates_s"] = time.perf_counter() - t0

    results: dict = {}
    per_query: list[dict] = []
    setting_rows: dict[str, list[dict]] = {}
    pair_ap: dict[tuple[int, str], float] = {}  # mono + cross AP per (query, pool language)
    for setting in settings:
        reason = setting_applicable(corpus, setting)
        if reason:
            results[setting] = {"not_applicable": reason}
            continue
        _log(f"evaluating {setting}", log)
        t0 = time.perf_counter()
        results[setting], rows = evaluate_setting(corpus, setting, Q, C, log)
        timings[f"{setting}_s"] = time.perf_counter() - t0
        setting_rows[setting] = rows
        if setting == "cross":
            pair_ap.update(results[setting].pop("_pair_ap"))
        elif setting == "mono":
            pair_ap.update({(r["query"], corpus.query_langs[r["query"]]): r["mAP"] for r in rows})
        if setting == "multi":
            per_query = rows

    report = {
        "task": task,
        "model": {"spec": model, "label": encoder.label, "fingerprint": encoder.fingerprint,
                  "precision": encoder.precision, "batch_size": batch_size,  # bf16 sums depend on it
                  "query_prefix": encoder.query_prefix, "passage_prefix": encoder.passage_prefix,
                  **({"debias": encoder.debiaser.record} if getattr(encoder, "debiaser", None) else {})},
        "languages": corpus.languages,
        "counts": corpus.counts(),
        "notes": corpus.notes,
        "settings": results,
        "matrices": {**_matrices(results, corpus.languages),
                     **results.get("multi", {}).get("pair_matrices", {})},
        "data_files": corpus.files,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "provenance": provenance(seed, max_seq_length=encoder.max_seq_length,
                                 encode_batch_size=batch_size, precision=encoder.precision),
        "definitions": {
            "ranks": "1-based, pessimistic (ties count against the candidate)",
            "mAP": "average precision over the whole pool (sklearn average_precision_score), mean over queries "
                   "per query language, then mean over languages",
            "cross": "per ordered pair; per query language the mean over target languages",
            "max_rank_distance": "multi only: max - min rank of a query's relevant candidates",
            f"same_lang@{TOP_K_SHARE}": "multi only: share of the top 10 in the query's language",
            "mean_rank_correlation": "multi only: Spearman between parallel queries' rankings of a pool sample",
        },
    }
    if out_dir is not None:
        write_outputs(Path(out_dir), report, per_query, corpus, setting_rows, layouts and Path(layouts), pair_ap)
    return report
