"""Write an `mkqa-mteb` evaluation as the result JSON MTEB publishes (embeddings-benchmark/results layout), so a
run can sit beside the leaderboard's files: task name, dataset revision, scores per split and `hf_subset`, with
`main_score` (nDCG@10) and the subset's `languages`.

Only the metrics hybridviz computes with MTEB's own definition are written under MTEB's names (ndcg_at_10,
recall_at_1, recall_at_10); hybridviz's untruncated MAP and MRR go under `hybridviz_*` keys. On the offline
subset `dataset_revision` says so, and `hybridviz` records the corpus and query counts of each language.
"""

from __future__ import annotations

from pathlib import Path

from hybridviz.errors import HybridvizError
from hybridviz.fileio import write_json_atomic
from hybridviz.results.store import read_metrics

TASK_NAME = "MKQARetrieval"
SPLIT = "train"
OFFICIAL_REVISION = "325131889721ae0ed885b76ecb8011369d75abad"  # apple/mkqa, the revision MTEB's CSV names
# MTEB's eval_langs for MKQARetrieval (mteb/tasks/retrieval/multilingual/mkqa_retrieval.py)
LANGUAGES = {"ar": ["ara-Arab"], "da": ["dan-Latn"], "de": ["deu-Latn"], "en": ["eng-Latn"], "es": ["spa-Latn"],
             "fi": ["fin-Latn"], "fr": ["fra-Latn"], "he": ["heb-Hebr"], "hu": ["hun-Latn"], "it": ["ita-Latn"],
             "ja": ["jpn-Jpan"], "ko": ["kor-Kore"], "km": ["khm-Khmr"], "ms": ["msa-Latn"], "nl": ["nld-Latn"],
             "no": ["nor-Latn", "nno-Latn", "nob-Latn"], "pl": ["pol-Latn"], "pt": ["por-Latn"],
             "ru": ["rus-Cyrl"], "sv": ["swe-Latn"], "th": ["tha-Thai"], "tr": ["tur-Latn"], "vi": ["vie-Latn"],
             "zh_cn": ["zho-Hans"], "zh_hk": ["zho-Hant"], "zh_tw": ["zho-Hant"]}
EXACT = {"nDCG@10": "ndcg_at_10", "R@1": "recall_at_1", "R@10": "recall_at_10"}


def mteb_result(report: dict) -> dict:
    if report.get("task") != "mkqa-mteb":
        raise HybridvizError(f"export-mteb needs an mkqa-mteb evaluation, not {report.get('task')!r}.")
    per_lang = report["settings"]["mono"]["per_language"]
    notes = report.get("notes", {})
    official = notes.get("source_format") == "official"
    scores = []
    for lang in sorted(per_lang):
        values = per_lang[lang]
        row = {name: round(float(values[ours]), 5) for ours, name in EXACT.items() if ours in values}
        row["hybridviz_map"] = round(float(values["mAP"]), 5)
        row["hybridviz_mrr"] = round(float(values["MRR"]), 5)
        row["main_score"] = row["ndcg_at_10"]
        row["hf_subset"] = lang
        row["languages"] = LANGUAGES.get(lang, [lang])
        scores.append(row)
    return {
        "dataset_revision": OFFICIAL_REVISION if official else "hybridviz-offline-subset",
        "task_name": TASK_NAME,
        "mteb_version": None,
        "scores": {SPLIT: scores},
        "evaluation_time": sum(v for k, v in report.get("timings", {}).items() if k.endswith("_s")),
        "kg_co2_emissions": None,
        "hybridviz": {"model": report["model"], "source_format": notes.get("source_format"),
                      "per_language_counts": notes.get("per_language"),
                      "note": "computed by hybridviz with MTEB's MKQARetrieval protocol"
                              + ("" if official else " on the offline MKQA subset (corpus about a third of "
                                                     "MTEB's): not comparable number for number")},
    }


def export(folder: Path, out: Path | None = None) -> Path:
    report = read_metrics(folder)
    out = Path(out) if out else Path(folder) / f"{TASK_NAME}.json"
    write_json_atomic(out, mteb_result(report))
    return out
