"""Tables of a bundle's summary: the headline (mean ± std with significance marks) and the paired tests."""

from __future__ import annotations

import pandas as pd

from hybridviz.viz.style import TASK_LABELS, group_label, group_order

HEADLINE_COLUMNS_BY_TASK = {"mkqa-mteb": [("mono", "nDCG@10", "nDCG@10 (MTEB main score)"),
                                         ("mono", "mAP", "mono mAP")]}
HEADLINE_COLUMNS = [("mono", "mAP", "mono mAP"), ("cross", "mAP", "cross mAP"), ("multi", "mAP", "multi mAP"),
                    ("multi", "max_rank_distance", "bias (rank distance)")]
MARKS = {"base": "B", "x-x-mono": "M", "x-y": "Y"}  # the comparator each mark names
MARK_LEGEND = ("mean ± std over seeds (n). Marks compare the row with a named comparator, the training run as the "
               "unit: ▲ better / ▼ worse than B = base, on the hybrid row than M = X-X-mono and Y = X-Y, and on a "
               "sampler + method row than S = the sampler alone; "
               "* adjusted p < .05, ** < .01, *** < .001, where p is the larger of the t-based and the exact "
               "permutation p of the runs (so with 5 + 5 runs ** at most, with 3 + 3 none; against the one-run base "
               "the t-based p alone), adjusted in its family of the bundle's analysis plan (primary — hybrid vs "
               "each pure sampler on multilingual mAP and rank distance — Holm per benchmark; the other sampler "
               "comparisons, those with an inductive training-free method, and those with a transductive @index "
               "method, Benjamini–Hochberg each). "
               "No mark: no detectable difference, which is not equivalence (see the verdict and the tests' "
               "equivalence column). Bias: lower is better.")


def _test(summary: dict, task: str, setting: str, metric: str, a: str, b: str) -> dict | None:
    return next((t for t in summary.get("tests", []) if t["task"] == task and t["setting"] == setting
                 and t["metric"] == metric and t["a"] == a and t["b"] == b), None)


def headline(summary: dict, task: str, groups: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(display table of strings, numeric long table): methods x the headline cells of one benchmark (by
    default the samplers and every training-free method; the alpha points are on the Sampler page)."""
    cells = {(c["task"], c["setting"], c["metric"], c["group"]): c for c in summary.get("cells", [])}
    if groups is None:
        groups = group_order({c["group"] for c in summary.get("cells", []) if c["task"] == task
                              and not c["group"].startswith("hybrid-a")})
    display, numeric = [], []
    for group in groups:
        row = {"sampler": group_label(group)}
        present = False
        for setting, metric, title in HEADLINE_COLUMNS_BY_TASK.get(task, HEADLINE_COLUMNS):
            c = cells.get((task, setting, metric, group))
            if c is None or c["mean"] is None:
                row[title] = "n/a" if setting == "mono" and task == "mkqa-queries" else ""
                continue
            present = True
            digits = 1 if metric == "max_rank_distance" else 4
            comparators = ["base"] if group != "base" else []
            if group == "hybrid":
                comparators += ["x-x-mono", "x-y"]
            if "+" in group and group.split("+", 1)[0] != "base":  # a sampler with a method: against it alone
                comparators.append(group.split("+", 1)[0])
            marks = []
            for other in comparators:
                t = _test(summary, task, setting, metric, other, group)
                if t and t.get("mark") and "verdict" in t:  # marks of an outdated summary are not shown
                    marks.append(f"{t['mark']}{MARKS.get(other, 'S')}")
            marks = " ".join(marks)
            spread = f" ± {c['std']:.{digits}f}" if c["n"] > 1 else ""
            row[title] = f"{c['mean']:.{digits}f}{spread} (n={c['n']}){' ' + marks if marks else ''}"
            numeric.append({"benchmark": task, "sampler": group, "setting": setting, "metric": metric,
                            "mean": c["mean"], "std": c["std"], "n": c["n"], "marks": marks})
        if present:
            display.append(row)
    return pd.DataFrame(display), pd.DataFrame(numeric)


def tests_table(summary: dict, task: str | None = None) -> pd.DataFrame:
    """Every run-level comparison of the summary, with the per-checkpoint figures beside it, labelled."""
    rows = []
    for t in summary.get("tests", []):
        if "verdict" not in t:  # a summary from before the analysis plan's statistics (version < 3)
            continue
        if task is not None and t["task"] != task:
            continue
        checkpoint = t.get("per_checkpoint") or {}
        rows.append({"benchmark": TASK_LABELS.get(t["task"], t["task"]), "setting": t["setting"],
                     "metric": t["metric"], "a": t["a"], "b": t["b"], "Δ (b − a)": t["delta"],
                     "95 % CI low": t["ci_low"], "95 % CI high": t["ci_high"], "b vs a": t["direction"],
                     "p (runs, t)": t["p"], "p permutation of runs": t.get("p_permutation"),
                     "p marks": t.get("p_marks"), "p adjusted": t["p_adjusted"], "family": t["correction"],
                     "mark": t["mark"], "verdict": t.get("verdict"), "equivalence margin ±": t.get("margin"),
                     "TOST p adjusted": t.get("p_tost_adjusted"), "MDE": t.get("mde"),
                     "MDE after correction": t.get("mde_family"),
                     "run pairs agreeing": f"{t.get('pairs_agree')}/{t.get('n_pairs')}",
                     "clusters": f"{t.get('clusters')} ({t.get('cluster_level', 'question')})",
                     "per checkpoint: p (query-level randomisation)": checkpoint.get("p_randomisation")})
    return pd.DataFrame(rows)


def _interval(d: dict, digits: int) -> str:
    return f"{d['delta']:+.{digits}f} [{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}]"


def robustness_table(rows: list[dict]) -> pd.DataFrame:
    """One line per set-up (bundle) and verdict cell of experiments.robustness: what it trained, the sampler
    verdict with the margin's 95 % interval, the samplers' order, and (monolingual) each sampler's Δ vs base."""
    out = []
    for r in rows:
        digits = 1 if r["metric"] == "max_rank_distance" else 4
        best, runner = group_label(r["best"]), group_label(r["runner_up"])
        within = "" if r.get("equivalence_margin") is None else f" ±{r['equivalence_margin']:.{digits}f}"
        verdict = {"equivalent": f"{best} and {runner} equivalent within{within}",
                   "not equivalent": f"{best} and {runner} not equivalent within{within} (not significant)",
                   "undetermined": f"undetermined ({best} vs {runner}; MDE {r['mde']:.{digits}f})"}.get(
            r.get("verdict"), f"{best} ahead of {runner}")
        line = {"set-up": r["bundle"], "encoder": r["model"], "training data": r["train_data"],
                "batch": r["batch_size"], "steps": r["steps"], "seeds": r["seeds"],
                "benchmark": TASK_LABELS.get(r["task"], r["task"]), "cell": f"{r['setting']} {r['metric']}",
                "verdict": verdict,
                "margin [95 % CI]": _interval({"delta": r["margin"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]},
                                              digits),
                "adjusted p": r["p_adjusted"], "run pairs agree": f"{r['pairs_agree']}/{r['n_pairs']}",
                "plan": r.get("plan"),
                "order (best first)": " > ".join(group_label(g) for g in r["ranking"])}
        for key in [k for k in r if k.startswith("vs_base_")]:
            line[f"{group_label(key[len('vs_base_'):])} − base"] = _interval(r[key], 4)
        out.append(line)
    return pd.DataFrame(out)


def column_widths(frame: pd.DataFrame, px_per_char: float = 7.5, padding: int = 28, most: int = 640) -> dict[str, int]:
    """Pixels per text column for its longest entry or heading (a table's cells do not wrap): method names and
    verdicts are shown whole, up to `most` pixels."""
    widths = {}
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):  # text (object or pandas' str dtype)
            longest = max([len(str(column))] + [len(str(v)) for v in frame[column]])
            widths[str(column)] = min(most, int(longest * px_per_char) + padding)
    return widths
