"""Result bundles: reading what the grid wrote, and the summary over seeds with paired significance tests.

The dashboard reads bundles only through this module. `write_summary(bundle)` is recomputed from the per-model
files after every grid unit (and by `python -m hybridviz summarise <bundle>`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridviz.data.paths import CACHE_DIR
from hybridviz.errors import HybridvizError
from hybridviz.experiments.stats import mean_std, paired_tests
from hybridviz.fileio import atomic_write_text, write_json_atomic

REFERENCE_DIR = CACHE_DIR / "reference"
# (setting, metric) cells of the headline table; rank correlation has no per-query value, so no test
HEADLINE = [("mono", "mAP"), ("cross", "mAP"), ("multi", "mAP"), ("multi", "max_rank_distance"),
            ("multi", "same_lang@10")]
LOWER_IS_BETTER = {"max_rank_distance"}
COMPARISONS = [("x-x-mono", "hybrid"), ("x-y", "hybrid"), ("x-x-mono", "x-y"), ("base", "x-x-mono"),
               ("base", "x-y"), ("base", "hybrid")]
PER_QUERY_COLUMN = {"mAP": "ap", "MRR": "rr", "nDCG@10": "ndcg@10"}


class BundleError(HybridvizError):
    """A result bundle that is missing or damaged."""


def open_text(folder: Path, name: str) -> str | None:
    """`name` or `name.gz` in `folder` (bundles gzip their per-query files); None when neither exists."""
    if (folder / name).exists():
        return (folder / name).read_text(encoding="utf-8")
    if (folder / f"{name}.gz").exists():
        try:
            return gzip.decompress((folder / f"{name}.gz").read_bytes()).decode("utf-8")
        except (OSError, EOFError) as exc:
            raise BundleError(f"{folder / name}.gz is damaged ({exc}).") from exc
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

    def per_query_lines(self) -> list[dict]:
        text = open_text(self.folder, "per_query.jsonl")
        return [json.loads(x) for x in text.splitlines() if x.strip()] if text else []


@dataclass
class Bundle:
    path: Path
    manifest: dict
    results: list[ModelResult]

    @property
    def summary(self) -> dict:
        path = self.path / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.results))

    def groups(self) -> list[str]:
        return list(dict.fromkeys(r.group for r in self.results))

    def get(self, label: str, task: str) -> ModelResult | None:
        return next((r for r in self.results if r.label == label and r.task == task), None)

    def select(self, group: str | None = None, task: str | None = None) -> list[ModelResult]:
        return [r for r in self.results if (group is None or r.group == group) and (task is None or r.task == task)]

    def training_config(self, label: str) -> dict:
        path = self.path / "models" / label / "training" / "config.json"
        return json.loads(path.read_text()) if path.exists() else {}


def group_of(unit: dict, main_alpha: float) -> str:
    sampler = unit.get("sampler", "base")
    if sampler == "hybrid" and unit.get("alpha") is not None and float(unit["alpha"]) != float(main_alpha):
        return f"hybrid-a{float(unit['alpha']):g}"
    return sampler


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise BundleError(f"No result bundle at {path} (no manifest.json). Make one with "
                          f"`python -m hybridviz experiment --out {path}`.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path} is damaged: {exc}.") from exc
    main_alpha = manifest.get("spec", {}).get("alpha", 0.5)
    results = []
    for label, unit in manifest.get("units", {}).items():
        for metrics_path in sorted((path / "models" / label).glob("*/metrics.json")):
            try:
                metrics = json.loads(metrics_path.read_text())
            except json.JSONDecodeError as exc:
                raise BundleError(f"{metrics_path} is damaged: {exc}.") from exc
            results.append(ModelResult(label, group_of(unit, main_alpha), unit.get("seed"), unit.get("alpha"),
                                       metrics.get("task", metrics_path.parent.name), metrics_path.parent, metrics))
    return Bundle(path, manifest, results)


def find_bundles(root: Path | None = None) -> list[Path]:
    root = Path(root or REFERENCE_DIR)
    return sorted(p.parent for p in root.glob("*/manifest.json")) if root.exists() else []


def read_step_budget(root: Path | None = None) -> dict | None:
    """`<reference>/step-budget/budget.json` (written by `python -m hybridviz budget`), or None before it exists."""
    path = Path(root or REFERENCE_DIR) / "step-budget" / "budget.json"
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        trials = state["trials"]
        for t in trials.values():  # the fields every view needs
            str(t["sampler"])
            int(t["steps"])
            float(t["multi_mAP"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"{path} is damaged ({type(exc).__name__}: {exc}); rerun `python -m hybridviz budget`, "
                          f"which rewrites it from the finished runs.") from None
    return state


def step_budget_frame(state: dict) -> "pd.DataFrame":
    """One row per (sampler, steps, setting) of a step-budget check: held-out mAP and the run behind it."""
    import pandas as pd

    rows = [{"sampler": t["sampler"], "steps": int(t["steps"]), "setting": setting, "mAP": t[f"{setting}_mAP"],
             "run_id": t.get("run_id"), "wall_s": t.get("wall_s")}
            for t in state["trials"].values() for setting in ("mono", "cross", "multi") if f"{setting}_mAP" in t]
    return pd.DataFrame(rows, columns=["sampler", "steps", "setting", "mAP", "run_id", "wall_s"])


# ------------------------------------------------------------------------------------------------ summary


def seen_languages(bundle: Bundle) -> list[str]:
    for r in bundle.results:
        cfg = bundle.training_config(r.label)
        if cfg.get("seen_languages"):
            return cfg["seen_languages"]
    return []


def is_seen(lang: str, seen: list[str]) -> bool:
    return lang.split("_")[0] in {s.split("_")[0] for s in seen}


def summarise(bundle: Bundle, n_resamples: int = 10_000) -> dict:
    """Mean +/- std over seeds of every headline cell, per-language means split seen/unseen, paired tests."""
    seen = seen_languages(bundle)
    cells, tests, per_language = [], [], {}
    for task in bundle.tasks():
        for group in bundle.groups():
            results = bundle.select(group, task)
            if not results:
                continue
            for setting, metric in HEADLINE + [("multi", "rank_corr")]:
                if metric == "rank_corr":
                    values = [r.metrics.get("settings", {}).get("multi", {}).get("mean_rank_correlation", {})
                              .get("macro") for r in results]
                else:
                    values = [r.macro(setting, metric) for r in results]
                if all(v is None for v in values):
                    continue
                cells.append({"task": task, "setting": setting, "metric": metric, "group": group,
                              **mean_std(values), "seeds": [r.seed for r in results], "values": values})
            langs = {}
            for setting in ("mono", "cross", "multi"):
                per = {}
                for r in results:
                    for lang, vals in r.metrics.get("settings", {}).get(setting, {}).get("per_language", {}).items():
                        per.setdefault(lang, []).append(vals.get("mAP"))
                if per:
                    langs[setting] = {lang: {**mean_std(v), "seen": is_seen(lang, seen)} for lang, v in per.items()}
            per_language.setdefault(task, {})[group] = langs
        by_seed = {(c["setting"], c["metric"], c["group"]): dict(zip(c["seeds"], c["values"]))
                   for c in cells if c["task"] == task}
        for setting, metric in HEADLINE:
            for a, b in COMPARISONS:
                qa, qb = _seed_mean_per_query(bundle, a, task, setting, metric), \
                    _seed_mean_per_query(bundle, b, task, setting, metric)
                common = sorted(set(qa) & set(qb))
                if len(common) < 2:
                    continue
                res = paired_tests(np.array([qa[q] for q in common]), np.array([qb[q] for q in common]),
                                   n_resamples=n_resamples)
                deltas = seed_deltas(by_seed.get((setting, metric, a), {}), by_seed.get((setting, metric, b), {}))
                tests.append({"task": task, "setting": setting, "metric": metric, "a": a, "b": b, **res,
                              "better": "b" if (res["delta"] < 0) == (metric in LOWER_IS_BETTER) else "a",
                              "seed_deltas": deltas,
                              "same_sign_every_seed": len(deltas) >= 2 and (all(d > 0 for d in deltas)
                                                                             or all(d < 0 for d in deltas))})
    return {"cells": cells, "tests": tests, "per_language": per_language, "seen_languages": seen,
            "n_resamples": n_resamples,
            "alpha_sweep": alpha_sweep(bundle),
            "definitions": {"std": "sample std over seeds (ddof=1)",
                            "tests": "paired over queries: each query's value averaged over the seeds of a "
                                     "sampler; two-sided t-test (scipy) and sign-flip randomisation test "
                                     f"({n_resamples} resamples); cross = mean over the query's target languages",
                            "delta": "mean of b - a over queries",
                            "seed_deltas": "b - a per seed (seed-matched; against a single-seed model such as "
                                           "the base, each seed of the other); same_sign_every_seed: all of them "
                                           "point the same way (needs >= 2 seeds)"}}


def seed_deltas(a: dict, b: dict) -> list[float]:
    """Per-seed differences b - a of one cell; a one-model side (the base) is compared with every seed of the other."""
    a = {s: v for s, v in a.items() if v is not None}
    b = {s: v for s, v in b.items() if v is not None}
    if not a or not b:
        return []
    if len(a) == 1:
        (va,) = a.values()
        return [b[s] - va for s in sorted(b)]
    if len(b) == 1:
        (vb,) = b.values()
        return [vb - a[s] for s in sorted(a)]
    return [b[s] - a[s] for s in sorted(set(a) & set(b))]


def _seed_mean_per_query(bundle: Bundle, group: str, task: str, setting: str, metric: str) -> dict[str, float]:
    runs = [r.per_query(setting, metric) for r in bundle.select(group, task)]
    runs = [r for r in runs if r]
    if not runs:
        return {}
    common = set.intersection(*(set(r) for r in runs))
    return {q: float(np.mean([r[q] for r in runs])) for q in common}


def alpha_sweep(bundle: Bundle) -> list[dict]:
    """XQuAD-R multilingual figures of the hybrid sampler at every alpha of the alpha seed."""
    spec = bundle.manifest.get("spec", {})
    seed = spec.get("alpha_seed", 0)
    points = []
    for label, unit in bundle.manifest.get("units", {}).items():
        if unit.get("seed") != seed or unit.get("alpha") is None:
            continue
        r = bundle.get(label, "xquad-r")
        if r is None:
            continue
        points.append({"alpha": float(unit["alpha"]), "label": label, "mAP": r.macro("multi", "mAP"),
                       "max_rank_distance": r.macro("multi", "max_rank_distance"),
                       "same_lang@10": r.macro("multi", "same_lang@10")})
    return sorted(points, key=lambda p: p["alpha"])


def write_summary(path: Path, n_resamples: int = 10_000) -> dict:
    bundle = load_bundle(path)
    summary = summarise(bundle, n_resamples=n_resamples)
    write_json_atomic(Path(path) / "summary.json", summary)
    lines = ["task,setting,metric,group,mean,std,n,values\n"]
    for c in summary["cells"]:
        vals = " ".join("" if v is None else f"{v:.6g}" for v in c["values"])
        mean, std = ("" if c[k] is None else f"{c[k]:.6g}" for k in ("mean", "std"))
        lines.append(f"{c['task']},{c['setting']},{c['metric']},{c['group']},{mean},{std},{c['n']},{vals}\n")
    atomic_write_text(Path(path) / "summary.csv", "".join(lines))
    return summary
