"""Tables of a bundle's summary: the headline (mean ± std with significance marks) and the paired tests."""

from __future__ import annotations

import pandas as pd

from hybridviz.viz.style import SAMPLER_LABELS, SAMPLER_ORDER, TASK_LABELS

HEADLINE_COLUMNS = [("mono", "mAP", "mono mAP"), ("cross", "mAP", "cross mAP"), ("multi", "mAP", "multi mAP"),
                    ("multi", "max_rank_distance", "bias (rank distance)")]
MARKS = {"base": "*", "x-x-mono": "†", "x-y": "‡"}
MARK_LEGEND = ("mean ± std over seeds (n). Paired randomisation test over queries, p < 0.05: * differs from "
               "base; on the hybrid row † differs from X-X-mono, ‡ differs from X-Y. Bias: lower is better.")


def _test(summary: dict, task: str, setting: str, metric: str, a: str, b: str) -> dict | None:
    return next((t for t in summary.get("tests", []) if t["task"] == task and t["setting"] == setting
                 and t["metric"] == metric and t["a"] == a and t["b"] == b), None)


def headline(summary: dict, task: str, groups: list[str] = SAMPLER_ORDER) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(display table of strings, numeric long table): samplers x the headline cells of one benchmark."""
    cells = {(c["task"], c["setting"], c["metric"], c["group"]): c for c in summary.get("cells", [])}
    display, numeric = [], []
    for group in groups:
        row = {"sampler": SAMPLER_LABELS.get(group, group)}
        present = False
        for setting, metric, title in HEADLINE_COLUMNS:
            c = cells.get((task, setting, metric, group))
            if c is None or c["mean"] is None:
                row[title] = "n/a" if setting == "mono" and task == "mkqa-queries" else ""
                continue
            present = True
            digits = 1 if metric == "max_rank_distance" else 4
            marks = ""
            if group != "base":
                t = _test(summary, task, setting, metric, "base", group)
                marks += MARKS["base"] if t and t["p_randomisation"] < 0.05 else ""
            if group == "hybrid":
                for other in ("x-x-mono", "x-y"):
                    t = _test(summary, task, setting, metric, other, "hybrid")
                    marks += MARKS[other] if t and t["p_randomisation"] < 0.05 else ""
            spread = f" ± {c['std']:.{digits}f}" if c["n"] > 1 else ""
            row[title] = f"{c['mean']:.{digits}f}{spread} (n={c['n']}){' ' + marks if marks else ''}"
            numeric.append({"benchmark": task, "sampler": group, "setting": setting, "metric": metric,
                            "mean": c["mean"], "std": c["std"], "n": c["n"], "marks": marks})
        if present:
            display.append(row)
    return pd.DataFrame(display), pd.DataFrame(numeric)


def tests_table(summary: dict, task: str | None = None) -> pd.DataFrame:
    rows = [{"benchmark": TASK_LABELS.get(t["task"], t["task"]), "setting": t["setting"], "metric": t["metric"],
             "a": t["a"], "b": t["b"], "mean a": t["mean_a"], "mean b": t["mean_b"], "Δ (b − a)": t["delta"],
             "p (randomisation)": t["p_randomisation"], "p (t-test)": t["p_ttest"], "queries": t["n"],
             "same sign in every seed": t.get("same_sign_every_seed")}
            for t in summary.get("tests", []) if task is None or t["task"] == task]
    return pd.DataFrame(rows)
