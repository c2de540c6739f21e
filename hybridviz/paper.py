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
