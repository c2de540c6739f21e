"""The evaluation results format: the names and fields every evaluation folder and result bundle share.

An evaluation folder holds
- `metrics.json` (`METRICS`): written last, so its presence marks a complete evaluation. A JSON object: "task",
  "model" ({"spec", "label", "fingerprint", ...}), "languages", "settings" ({setting: {"macro": {metric: value},
  "per_language": {language: {metric: value}}, ...}} or {"not_applicable": why}), "matrices", "provenance",
  "notes", "timings", "definitions". `mkqa-nq` writes the same fields (one setting, "nq").
- the per-query figures, in one of two encodings of the same records (codec.py):
  - text (an evaluation's own folder): per_query.jsonl (`RECORDS`: the multilingual setting's AP, MRR, nDCG@10,
    bias and the rank of every relevant item) and per_query_settings.csv (`SETTINGS_CSV`: AP / MRR / nDCG@10 per
    query in every setting), either possibly gzipped;
  - compact (result bundles): per_query.npz (`COMPACT_NAME`), what every model of a task shares in the bundle's
    layouts/<digest>.npz (`LAYOUTS`).
- per_query_pairs.npz (`PAIRS_NAME`): AP per query and pool language (float16).

A result bundle holds manifest.json (`MANIFEST`), summary.json / summary.csv and models/<label>/<task>/ evaluation
folders; a unit being evaluated anew sits in models/<label>.retrained/ (`RETRAINED`), a refreshed evaluation in
<task>.refresh/ (`REFRESH`) and a new one in <task>.partial/ (`PENDING`) until it is swapped in (store.py); while a
grid runs, progress.json (`PROGRESS`) holds each unit's state (queued, running on which node, done, failed).
"""

from __future__ import annotations

from hybridviz.errors import HybridvizError
from hybridviz.metrics import TOP_K_SHARE

METRICS = "metrics.json"
RECORDS = "per_query.jsonl"
SETTINGS_CSV = "per_query_settings.csv"
TEXT_FILES = (RECORDS, SETTINGS_CSV)
COMPACT_NAME = "per_query.npz"
PAIRS_NAME = "per_query_pairs.npz"
LAYOUTS = "layouts"  # a bundle's folder of shared layouts
MANIFEST = "manifest.json"
SUMMARY = "summary.json"
SUMMARY_CSV = "summary.csv"
RETRAINED = ".retrained"  # models/<label>.retrained/: a unit evaluated anew on a retrained checkpoint
REFRESH = ".refresh"  # models/<label>/<task>.refresh/: a stale evaluation being redone
RETIRED = ".old"  # what a swap moves aside until the new folder is in place
PENDING = ".partial"  # models/<label>/<task>.partial/: a new evaluation being written, swapped in once complete
STAGED = (REFRESH, PENDING, RETIRED)  # evaluation folders that are not (yet, or any more) results
PROGRESS = "progress.json"  # a running grid's per-unit states, written by the one process that runs it
# models/<label>/training/: the small files that describe a fine-tune (its weights stay in the run registry)
TRAINING_RECORD = ("config.json", "train_log.jsonl", "status.json", "validation.jsonl", "validation_pool.json",
                   "probes.jsonl")

# metrics.json's per-setting metric -> the per-query files' column
PER_QUERY_COLUMN = {"mAP": "ap", "MRR": "rr", "nDCG@10": "ndcg@10"}
PER_QUERY_SETTING_COLUMNS = ("setting", "query_id", "query_lang", "ap", "rr", "ndcg@10")
RECORD_FIGURES = ("max_rank_distance", f"same_lang@{TOP_K_SHARE}")  # per_query.jsonl's figures beyond the settings'
RECORD_FIELDS = ("query_id", "query_lang", "ap", "rr", "ndcg@10", *RECORD_FIGURES, "relevant")

# 3 leaves out the figures that follow from the ranks it stores; 2 stored every figure; 1 held its layout inline
# (all read; compact-results converts the older ones)
COMPACT_VERSION = 3
COMPACT_VERSIONS = (1, 2, COMPACT_VERSION)
# The multilingual setting's AP, RR and nDCG@10 and the rank distance are functions of the ranks of a query's
# relevant items, which the records keep (for the bias views): format 3 recomputes them on reading instead of
# storing them, a quarter of a bundle's per-query bytes, wherever the recomputed figures equal the stored ones
# bit for bit (all 173 evaluations of the committed bundles did).
DERIVABLE = {"multi.ap": "mAP", "multi.rr": "MRR", "multi.ndcg@10": "nDCG@10",
             "records.max_rank_distance": "max_rank_distance"}


class ResultsError(HybridvizError):
    """An evaluation folder or result bundle file that is damaged."""


def check_report(report, where) -> dict:
    """`report` if it is a metrics.json object (a JSON object with a "settings" object where it has one), else
    ResultsError naming `where`."""
    if not isinstance(report, dict) or not isinstance(report.get("settings", {}), dict):
        raise ResultsError(f"{where} is damaged or unreadable (not an evaluation's metrics object).")
    return report
