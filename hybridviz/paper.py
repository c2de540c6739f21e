"""The paper's reported figures (hybrid batch training, arXiv 2408.10536), for display beside ours.

They are *reported*, not computed here: XLM-R and LaBSE fine-tuned on mMARCO + translated QA data on an A100.
The CSV in `hybridviz/resources/` is the per-language long table read from the paper; every page that shows
these rows labels them "reported".
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_CSV = Path(__file__).parent / "resources" / "paper_results.csv"
MODEL_LABELS = {"xlm-r": "XLM-R (reported)", "labse": "LaBSE (reported)"}


def reported_results() -> pd.DataFrame:
    """Long table: model, sampler, dataset, setting, query_language, metric, value."""
    return pd.read_csv(PAPER_CSV, comment="#")


def reported_headline(dataset: str = "xquad-r") -> pd.DataFrame:
    """One row per (model, sampler): macro mono / cross / multi mAP and multi max rank distance."""
    df = reported_results()
    df = df[(df["dataset"] == dataset) & (df["query_language"] == "mean")]
    df = df.assign(cell=df["setting"] + " " + df["metric"])
    wide = df.pivot_table(index=["model", "sampler"], columns="cell", values="value").reset_index()
    wide["model"] = wide["model"].map(MODEL_LABELS)
    return wide


# MTEB's published MKQARetrieval figures for intfloat/multilingual-e5-small (embeddings-benchmark/results; the
# CSV's header names the file and commit). Full official MKQA: about 6,600-6,900 answer strings per language
# (MTEB descriptive stats) — our offline corpus is about a third of that.
MTEB_MKQA_CSV = Path(__file__).parent / "resources" / "mteb_mkqa_multilingual-e5-small.csv"
MTEB_CORPUS_PER_LANGUAGE = "about 6,600–6,900"
CONTAMINATION_NOTE = ("multilingual-e5 was trained on data that includes Natural Questions, MKQA's source: an E5 "
                      "model's MKQA figures may be inflated by contamination.")


def reported_mteb_mkqa() -> pd.DataFrame:
    """MTEB's per-language nDCG@10 (and MAP@10, MRR@10, recall@10/100/1000) for multilingual-e5-small."""
    return pd.read_csv(MTEB_MKQA_CSV, comment="#")


def mteb_mkqa_beside(report: dict) -> pd.DataFrame:
    """Our mkqa-mteb nDCG@10 per language beside MTEB's reported figure, with each side's corpus size."""
    reported = reported_mteb_mkqa().set_index("hf_subset")
    counts = report.get("notes", {}).get("per_language", {})
    rows = []
    for lang, values in sorted(report["settings"]["mono"]["per_language"].items()):
        rows.append({"language": lang, "ours nDCG@10": values["nDCG@10"],
                     "ours corpus (answer strings)": counts.get(lang, {}).get("corpus"),
                     "ours queries": counts.get(lang, {}).get("queries"),
                     "reported nDCG@10 (MTEB, full MKQA, mE5-small)":
                         reported["ndcg_at_10"].get(lang) if lang in reported.index else None,
                     "reported corpus": MTEB_CORPUS_PER_LANGUAGE if lang in reported.index else None})
    return pd.DataFrame(rows)
