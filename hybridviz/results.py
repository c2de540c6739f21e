"""The evaluation results format: one module writes it and reads it.

An evaluation folder holds metrics.json (written last: its presence marks a complete evaluation),
per_query.jsonl (multilingual setting: AP, MRR, nDCG@10, bias and the rank of every relevant item),
per_query_settings.csv (AP / MRR / nDCG@10 per query in every setting) — both optionally gzipped — and
per_query_pairs.npz (AP per query and pool language). `evaluate.py` computes and calls `write_outputs`;
bundles, the lab, heatmaps, the status page and the figures read through `ModelResult`, `read_metrics`,
`open_text` and `pair_values`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridviz.errors import HybridvizError
from hybridviz.fileio import atomic_write_bytes, atomic_write_text, write_json_atomic
from hybridviz.metrics import TOP_K_SHARE
from hybridviz.tasks import Corpus

PER_QUERY_COLUMN = {"mAP": "ap", "MRR": "rr", "nDCG@10": "ndcg@10"}


class ResultsError(HybridvizError):
    """An evaluation folder that is damaged."""


def read_metrics(folder: Path) -> dict:
    """An evaluation folder's metrics.json, or ResultsError naming the damaged file."""
    path = Path(folder) / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path} is damaged or unreadable ({exc}).") from None


# ------------------------------------------------------------------------------------------------ writing


def per_query_lines(rows: list[dict], corpus: Corpus) -> list[dict]:
    lines = []
    for r in rows:
        q = r["query"]
        copies = corpus.string_copies(q)  # mkqa-answers: its copies in other languages are not relevant
        rel_global = [c for c in corpus.relevant_candidates(q) if c not in copies]
        # positions local to the multilingual pool equal global ones: that pool is every candidate, in order
        line = {"query_id": corpus.query_ids[q], "query_lang": corpus.query_langs[q], "ap": r["mAP"],
                "rr": r["MRR"], "ndcg@10": r["nDCG@10"], "max_rank_distance": r["max_rank_distance"],
                f"same_lang@{TOP_K_SHARE}": r[f"same_lang@{TOP_K_SHARE}"],
                "relevant": [{"candidate_id": corpus.cand_ids[c], "lang": corpus.cand_langs[c], "rank": int(k)}
                             for c, k in zip(r["relevant"], r["ranks"])]}
        assert len(rel_global) == len(line["relevant"])
        lines.append(line)
    return lines


PER_QUERY_SETTING_COLUMNS = ("setting", "query_id", "query_lang", "ap", "rr", "ndcg@10")


def per_query_setting_lines(setting_rows: dict[str, list[dict]], corpus: Corpus) -> list[str]:
    """CSV of every setting's per-query AP / RR / nDCG@10 (cross: mean over the query's target languages)."""
    lines = [",".join(PER_QUERY_SETTING_COLUMNS) + "\n"]
    for setting, rows in setting_rows.items():
        for r in rows:
            q = r["query"]
            lines.append(f"{setting},{corpus.query_ids[q]},{corpus.query_langs[q]},"
                         f"{r['mAP']:.6g},{r['MRR']:.6g},{r['nDCG@10']:.6g}\n")
    return lines


def pair_matrix(pair_ap: dict[tuple[int, str], float], corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """(query positions, AP[query, pool language]) for every query with a mono or cross value; NaN elsewhere."""
    queries = np.array(sorted({q for q, _ in pair_ap}), dtype=np.int64)
    row = {int(q): i for i, q in enumerate(queries)}
    col = {lang: j for j, lang in enumerate(corpus.languages)}
    ap = np.full((len(queries), len(corpus.languages)), np.nan, dtype=np.float16)
    for (q, lang), v in pair_ap.items():
        ap[row[q], col[lang]] = v
    return queries, ap


def write_outputs(out_dir: Path, report: dict, rows: list[dict], corpus: Corpus,
                  setting_rows: dict[str, list[dict]] | None = None, compress: bool = False,
                  pair_ap: dict[tuple[int, str], float] | None = None) -> None:
    """metrics.json, per_query.jsonl (multi), per_query_settings.csv (all settings; gzipped if `compress`)
    and per_query_pairs.npz (AP per query and pool language, float16: significance per heatmap cell)."""
    if pair_ap:
        queries, ap = pair_matrix(pair_ap, corpus)
        buf = io.BytesIO()
        np.savez_compressed(buf, query_ids=np.array([corpus.query_ids[q] for q in queries]),
                            pool_langs=np.array(corpus.languages), ap=ap)
        atomic_write_bytes(out_dir / "per_query_pairs.npz", buf.getvalue())
    lines = per_query_lines(rows, corpus)
    files = {"per_query.jsonl": "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
             "per_query_settings.csv": "".join(per_query_setting_lines(setting_rows or {}, corpus))}
    for name, text in files.items():
        if compress:
            atomic_write_bytes(out_dir / f"{name}.gz", gzip.compress(text.encode(), mtime=0))
            (out_dir / name).unlink(missing_ok=True)
        else:
            atomic_write_text(out_dir / name, text)
    write_json_atomic(out_dir / "metrics.json", report)  # last: its presence marks a complete evaluation


# ------------------------------------------------------------------------------------------------ reading


def open_text(folder: Path, name: str) -> str | None:
    """`name` or `name.gz` in `folder` (bundles gzip their per-query files); None when neither exists."""
    if (folder / name).exists():
        return (folder / name).read_text(encoding="utf-8")
    if (folder / f"{name}.gz").exists():
        try:
            return gzip.decompress((folder / f"{name}.gz").read_bytes()).decode("utf-8")
        except (OSError, EOFError) as exc:
            raise ResultsError(f"{folder / name}.gz is damaged ({exc}).") from exc
    return None


@dataclass
class ModelResult:
    label: str
    group: str  # "base", "x-x-mono", "x-y", "hybrid", or "hybrid-a0.25" for the extra alpha points
    seed: int | None
    alpha: float | None
    task: str
    folder: Path
    metrics: dict

    def macro(self, setting: str, metric: str) -> float | None:
        res = self.metrics.get("settings", {}).get(setting, {})
        return res.get("macro", {}).get(metric)

    def per_query(self, setting: str, metric: str) -> dict[str, float]:
        """query id -> value of `metric` in `setting` (mAP/MRR/nDCG@10 for all settings; bias for multi)."""
        if metric in PER_QUERY_COLUMN:
            text = open_text(self.folder, "per_query_settings.csv")
            if text is None:
                return {}
            col = PER_QUERY_COLUMN[metric]
            return {r["query_id"]: float(r[col]) for r in csv.DictReader(io.StringIO(text))
                    if r["setting"] == setting}
        if setting != "multi":
            return {}
        return {line["query_id"]: float(line[metric]) for line in self.per_query_lines()}

    def per_query_table(self) -> dict[tuple[str, str], dict[str, float]]:
        """(setting, metric) -> {query id: value} for every per-query figure, each file parsed once (what
        `per_query` gives one (setting, metric) at a time)."""
        table: dict[tuple[str, str], dict[str, float]] = {}
        text = open_text(self.folder, "per_query_settings.csv")
        for row in csv.DictReader(io.StringIO(text or "")):
            for metric, col in PER_QUERY_COLUMN.items():
                table.setdefault((row["setting"], metric), {})[row["query_id"]] = float(row[col])
        for line in self.per_query_lines(figures_only=True):
            for metric, value in line.items():
                if metric not in ("query_id", "query_lang", "relevant", *PER_QUERY_COLUMN.values()):
                    table.setdefault(("multi", metric), {})[line["query_id"]] = float(value)
        return table

    def per_query_lines(self, figures_only: bool = False) -> list[dict]:
        """per_query.jsonl's records; `figures_only` leaves out each record's list of relevant items (most of
        the bytes: writing puts it last, so the rest parses alone, ~3x faster)."""
        text = open_text(self.folder, "per_query.jsonl")
        lines = [x for x in text.splitlines() if x.strip()] if text else []
        if figures_only:
            return [json.loads(_without_relevant(x)) for x in lines]
        return [json.loads(x) for x in lines]


RELEVANT_TAIL = ', "relevant": '


def _without_relevant(line: str) -> str:
    cut = line.find(RELEVANT_TAIL)
    return line if cut < 0 else line[:cut] + "}"


def pair_values(folder) -> tuple[list[str], list[str], np.ndarray] | None:
    """(query ids, pool languages, AP[query, pool language]) from an evaluation folder's per_query_pairs.npz."""
    path = Path(folder) / "per_query_pairs.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        return [str(q) for q in z["query_ids"]], [str(x) for x in z["pool_langs"]], z["ap"].astype(np.float64)
