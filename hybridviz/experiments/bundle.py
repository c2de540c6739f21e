"""Result bundles: reading what the grid wrote, and the summary over seeds with paired significance tests.

The dashboard reads bundles only through this module. `write_summary(bundle)` is recomputed from the per-model
files after every grid unit (and by `python -m hybridviz summarise <bundle>`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hybridviz.data.paths import REFERENCE_DIR  # noqa: F401  (pages and tests point it elsewhere here)
from hybridviz.errors import HybridvizError
from hybridviz.experiments.plan import FAMILIES, AnalysisPlan, plan_of, plan_record
from hybridviz.experiments.stats import (ClusterMap, benjamini_hochberg, compare_runs, direction, holm, mark,
                                         mean_std, minimum_detectable_effect, paired_tests, paragraph_clusters,
                                         run_level_possible, verdict_of)
from hybridviz.results.format import MANIFEST, ResultsError
from hybridviz.results.store import (ModelResult, evaluation_folders, pair_values, read_manifest, read_metrics,
                                     read_summary, read_training_config, task_evaluations, unit_folder,
                                     write_summary_files)
from hybridviz.tasks import MKQA_ANSWERS_PROTOCOL, TASK_ORDER, is_seen
from hybridviz.training.runs import list_runs

if TYPE_CHECKING:  # pandas is imported where a frame is built: a page pays for it on use
    import pandas as pd

# (setting, metric) cells of the headline table; rank correlation has no per-query value, so no test
# MTEB's MKQARetrieval is monolingual with nDCG@10 as its main score
HEADLINE_BY_TASK = {"mkqa-mteb": [("mono", "nDCG@10"), ("mono", "mAP")]}
HEADLINE = [("mono", "mAP"), ("cross", "mAP"), ("multi", "mAP"), ("multi", "max_rank_distance"),
            ("multi", "same_lang@10")]
# methods in the order pairs are formed (Δ = later − earlier); methods added later (debiasing) come after
COMPARISON_ORDER = ["base", "x-x-mono", "x-y", "hybrid"]


class BundleError(HybridvizError):
    """A result bundle that is missing or damaged (a damaged file of it raises the store's ResultsError)."""


@dataclass
class Bundle:
    path: Path
    manifest: dict
    results: list[ModelResult]

    @property
    def summary(self) -> dict:
        return read_summary(self.path)

    def tasks(self) -> list[str]:
        """The bundle's benchmarks, XQuAD-R (the paper's) first: pages open on the most informative one."""
        found = list(dict.fromkeys(r.task for r in self.results))
        return sorted(found, key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t))

    def groups(self) -> list[str]:
        return list(dict.fromkeys(r.group for r in self.results))

    def get(self, label: str, task: str) -> ModelResult | None:
        return next((r for r in self.results if r.label == label and r.task == task), None)

    def select(self, group: str | None = None, task: str | None = None) -> list[ModelResult]:
        return [r for r in self.results if (group is None or r.group == group) and (task is None or r.task == task)]

    def training_config(self, label: str) -> dict:
        return read_training_config(self.path, label)


def group_of(unit: dict, main_alpha: float) -> str:
    """The method a unit's runs belong to: "hybrid", "hybrid-a0.25", "base+center", "x-y+lir:k=1"."""
    sampler = unit.get("sampler", "base")
    if sampler == "hybrid" and unit.get("alpha") is not None and float(unit["alpha"]) != float(main_alpha):
        sampler = f"hybrid-a{float(unit['alpha']):g}"
    return f"{sampler}+{unit['method']}" if unit.get("method") else sampler


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    if not (path / MANIFEST).exists():
        raise BundleError(f"No result bundle at {path} (no {MANIFEST}). Make one with "
                          f"`python -m hybridviz experiment --out {path}`.")
    try:  # a damaged file: the store's one error, which names it
        manifest = read_manifest(path)
        main_alpha = manifest.get("spec", {}).get("alpha", 0.5)
        results = []
        for label, unit in manifest.get("units", {}).items():
            for folder, metrics in task_evaluations(unit_folder(path, label)):
                results.append(ModelResult(label, group_of(unit, main_alpha), unit.get("seed"), unit.get("alpha"),
                                           task_key(metrics, folder.name), folder, metrics))
    except ResultsError as exc:
        raise BundleError(str(exc)) from None
    return Bundle(path, manifest, results)


LEGACY_MKQA_ANSWERS = "mkqa-answers-v1"


def task_key(metrics: dict, fallback: str) -> str:
    """The task a result counts under: pooled-answer results of the first protocol (which rewarded identical
    strings across languages) are kept apart, so they are never compared with the current protocol's."""
    task = metrics.get("task", fallback)
    if task == "mkqa-answers" and metrics.get("notes", {}).get("protocol_version", 1) < MKQA_ANSWERS_PROTOCOL:
        return LEGACY_MKQA_ANSWERS
    return task


def find_bundles(root: Path | None = None) -> list[Path]:
    root = Path(root or REFERENCE_DIR)
    return sorted(p.parent for p in root.glob(f"*/{MANIFEST}")) if root.exists() else []


def find_step_budgets(root: Path | None = None) -> list[str]:
    """The step-budget checks beside the bundles: `step-budget` (the sampler grid's set-up) and `step-budget-*`
    (other set-ups, e.g. `python -m hybridviz budget --model muse --out cache/reference/step-budget-muse`)."""
    root = Path(root or REFERENCE_DIR)
    return sorted(p.parent.name for p in root.glob("step-budget*/budget.json")) if root.exists() else []


def read_step_budget(root: Path | None = None, name: str = "step-budget") -> dict | None:
    """`<reference>/<name>/budget.json` (written by `python -m hybridviz budget`), or None before it exists."""
    path = Path(root or REFERENCE_DIR) / name / "budget.json"
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


def step_budget_frame(state: dict) -> pd.DataFrame:
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




# The families, the test behind the marks, the cluster level and the margins are the bundle's analysis plan's
# (experiments/plan.py: manifest.json's `analysis_plan`, else the post hoc DEFAULT_PLAN); nothing here restates them.
SUMMARY_VERSION = 3  # 2: run-level comparisons replace query-level tests; 3: the analysis plan (marks capped by the
# permutation floor, paragraph clusters, MDE and TOST, unpaired run-pair agreement, the transductive family)


def summary_outdated(summary: dict) -> bool:
    """True for a summary written before the current statistics (version < SUMMARY_VERSION): its marks and
    verdicts must not be shown until it is recomputed."""
    return bool(summary) and summary.get("version", 1) < SUMMARY_VERSION


def task_clusters(bundle: Bundle, task: str, plan: AnalysisPlan) -> ClusterMap | None:
    """The query -> cluster map of `task` at the plan's level: None for "question" (the default of the
    statistics), the paragraph components (stats.paragraph_clusters) from the relevant items' candidate ids
    of the task's first result for "paragraph"."""
    if plan.level(task) != "paragraph":
        return None
    results = bundle.select(task=task)
    if not results:
        return None
    return paragraph_clusters(results[0].relevant_ids())


def method_pairs(groups: list[str]) -> list[tuple[str, str]]:
    """Every pair (a, b) of compared methods, Δ = b − a: the base and the samplers first, then training-free
    methods (so a verdict can always compare its best method with the runner-up); alpha points aside."""
    methods = [g for g in groups if not g.startswith("hybrid-a")]
    order = {m: i for i, m in enumerate(COMPARISON_ORDER)}
    methods.sort(key=lambda m: (order.get(m, len(order)), not m.startswith("base+"), m))
    return [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:]]


def summarise(bundle: Bundle, n_resamples: int = 10_000, plan: AnalysisPlan | None = None) -> dict:
    """Mean ± std over seeds of every headline cell, per-language means split seen/unseen, and for every
    headline cell and pair of methods the run-level comparison (experiments/stats.py) with its correction, all
    under the bundle's analysis plan (`plan`: another one, to see what it would say)."""
    plan = plan or plan_of(bundle.manifest)
    seen = seen_languages(bundle)
    cells, tests, per_language = [], [], {}

    def runs_of(group, task, setting, metric):
        runs = []
        for r in bundle.select(group, task):
            if r.folder not in tables:  # each result's files parsed once, kept for its task only
                tables[r.folder] = r.per_query_table()
            runs.append((r.seed, r.macro(setting, metric), tables[r.folder].get((setting, metric), {})))
        return [x for x in runs if x[1] is not None and x[2]]

    def seed_means(group, cell, runs):  # each group's per-checkpoint view once per cell, not once per pair
        key = (group, *cell)
        if key not in checkpoint_means:
            checkpoint_means[key] = _seed_mean(runs)
        return checkpoint_means[key]

    checkpoint_means: dict = {}
    for task in bundle.tasks():
        tables: dict = {}
        clusters = task_clusters(bundle, task, plan)
        for group in bundle.groups():
            results = bundle.select(group, task)
            if not results:
                continue
            for setting, metric in HEADLINE_BY_TASK.get(task, HEADLINE + [("multi", "rank_corr")]):
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
        base_means = {(c["setting"], c["metric"]): c["mean"] for c in cells
                      if c["task"] == task and c["group"] == "base"}
        for setting, metric in HEADLINE_BY_TASK.get(task, HEADLINE):
            margin = plan.margin(metric, base_means.get((setting, metric)))
            for a, b in method_pairs(bundle.groups()):
                ra, rb = runs_of(a, task, setting, metric), runs_of(b, task, setting, metric)
                if not ra or not rb or not run_level_possible([x[0] for x in ra], [x[0] for x in rb]):
                    continue
                cmp = compare_runs([x[2] for x in ra], [x[2] for x in rb], [x[1] for x in ra], [x[1] for x in rb],
                                   [x[0] for x in ra], [x[0] for x in rb], n_resamples=n_resamples,
                                   clusters=clusters, margin=margin, alpha=plan.alpha, power=plan.power,
                                   marks_rule=plan.test["marks"])
                cell = (task, setting, metric)
                qa, qb = seed_means(a, cell, ra), seed_means(b, cell, rb)
                common = sorted(set(qa) & set(qb))
                core = a in COMPARISON_ORDER and b in COMPARISON_ORDER
                checkpoint = paired_tests(np.array([qa[q] for q in common]), np.array([qb[q] for q in common]),
                                          n_resamples=n_resamples) if len(common) >= 2 and core else None
                d = direction(cmp.delta, metric)
                tests.append({"task": task, "setting": setting, "metric": metric, "a": a, "b": b,
                              **cmp.as_dict(), "direction": d,
                              "better": b if d == "better" else a if d == "worse" else None,
                              "family": plan.family(a, b, setting, metric, COMPARISON_ORDER),
                              "per_checkpoint": checkpoint})
    adjust(tests, plan)
    return {"version": SUMMARY_VERSION, "cells": cells, "tests": tests, "per_language": per_language,
            "seen_languages": seen, "n_resamples": n_resamples,
            "plan": plan.to_dict(), "plan_record": plan_record(bundle.manifest),
            "alpha_sweep": alpha_sweep(bundle),
            "definitions": definitions(plan, n_resamples)}


def definitions(plan: AnalysisPlan, n_resamples: int) -> dict:
    """What each field of a summary's tests means, under `plan` (stored in the summary beside them)."""
    fams = "; ".join(f"{name}: {plan.families[name]['what']}, {plan.families[name]['correction']} "
                     f"{'per benchmark' if plan.families[name]['scope'] == 'benchmark' else 'over the bundle'}"
                     for name in FAMILIES)
    return {"plan": f"{plan.label}: {plan.description or plan.name}",
            "std": "sample std over seeds (ddof=1)",
            "unit": "the training run (seed); clusters of queries at the plan's level per benchmark ("
                    + ", ".join(f"{t}: {lvl}" for t, lvl in plan.cluster_level.items()) + "). " + plan.cluster_why,
            "delta": "mean over b's runs minus mean over a's runs of the headline figure (language macro-average); "
                     "a single-run method (the base) is one value",
            "ci": f"95 % interval: delta ± t(df) x the standard error of a two-level bootstrap ({n_resamples} "
                  f"resamples) over runs and clusters",
            "p": "two-sided, from the same standard error and t(df) (the t-based p); p_permutation: exact "
                 "permutation of run labels (scipy), needs two runs a side (floor 2/252 with 5 + 5 runs, 2/20 "
                 "with 3 + 3)",
            "p_marks": "what the marks and the verdict use: " + plan.test["marks"] + " -- " + plan.test["marks_why"],
            "p_adjusted": "p_marks adjusted within its family: " + fams + ". p_t_adjusted: the t-based p adjusted "
                          "the same way (for reference)",
            "mark": "▲ better / ▼ worse (b against a, by the metric's direction) with * p_adjusted < .05, ** < .01, "
                    "*** < .001; with 5 + 5 runs ** at best (permutation floor .0079 before adjustment)",
            "direction": "b against a, by the metric's direction (lower is better for max rank distance and the "
                         "same-language share)",
            "pairs_agree": "of the n_a x n_b run pairs (one run of a, one of b), how many have b − a of delta's "
                           "sign; unpaired, as the test. " + plan.pairing,
            "mde": f"minimum detectable |delta|: two-sided alpha {plan.alpha:g}, power {plan.power:g}, this "
                   f"comparison's SE and df (noncentral t); mde_family: the same at alpha / m, the first step of "
                   f"the family's correction (m = family_size tests)",
            "margin": "the plan's equivalence margin for the cell: " + "; ".join(
                f"{metric} {plan.margin_text(metric)} ({m['why']})" for metric, m in plan.margins.items()),
            "p_tost": "two one-sided t tests of |true delta| >= margin, the same SE and df; p_tost_adjusted: "
                      "within the family, as p_adjusted. " + plan.test.get("equivalence", ""),
            "verdict": "better / worse: p_adjusted < alpha; equivalent: not significant and p_tost_adjusted < "
                       "alpha (the difference lies within ±margin); not equivalent: the 95 % interval lies wholly "
                       "outside ±margin; undetermined: neither",
            "per_checkpoint": "query-level paired tests of the seed-averaged checkpoints (t-test and sign-flip "
                              "randomisation); they describe these checkpoints, not the samplers"}


def adjust(tests: list[dict], plan: AnalysisPlan | None = None) -> None:
    """Adjusted p-values, MDE after correction, marks and verdicts, in place, by the plan's families: each
    family (primary: per benchmark; the others over the bundle) corrects its own tests, so adding a method never
    changes the samplers' marks. The marks' p (p_marks), the t-based p and the TOST p are each adjusted."""
    from hybridviz.experiments.plan import DEFAULT_PLAN

    plan = plan or DEFAULT_PLAN
    for name in FAMILIES:
        family = plan.families[name]
        correct = holm if family["correction"] == "holm" else benjamini_hochberg
        members = [t for t in tests if t["family"] == name]
        scopes = ([[t for t in members if t["task"] == task] for task in dict.fromkeys(t["task"] for t in members)]
                  if family["scope"] == "benchmark" else [members])
        for group in scopes:
            if not group:
                continue
            m = len(group)
            for t, p, p_t in zip(group, correct([t["p_marks"] for t in group]), correct([t["p"] for t in group])):
                t["p_adjusted"], t["p_t_adjusted"] = float(p), float(p_t)
                t["correction"] = f"{family['correction']} ({name})"
                t["family_size"], t["alpha_family"] = m, plan.alpha / m
                t["mde_family"] = minimum_detectable_effect(t["se"], t["df"], plan.alpha / m, plan.power)
                t["p_tost_adjusted"] = None
            with_margin = [t for t in group if t.get("p_tost") is not None]
            for t, p in zip(with_margin, correct([t["p_tost"] for t in with_margin])):
                t["p_tost_adjusted"] = float(p)
    for t in tests:
        t["mark"] = mark(t["p_adjusted"], t["delta"], t["metric"])
        t["verdict"] = verdict_of(t["p_adjusted"], t.get("p_tost_adjusted"), t["delta"], t["ci_low"], t["ci_high"],
                                  t.get("margin"), t["metric"], plan.alpha)


def _seed_mean(runs) -> dict[str, float]:
    """query id -> mean over runs of the query's value (the per-checkpoint view)."""
    tables = [x[2] for x in runs]
    common = list(set(tables[0]).intersection(*tables[1:]))
    means = np.mean([[t[q] for q in common] for t in tables], axis=0)
    return dict(zip(common, means.tolist()))


def alpha_sweep(bundle: Bundle) -> list[dict]:
    """XQuAD-R multilingual figures of the hybrid sampler at every alpha of the alpha seed."""
    spec = bundle.manifest.get("spec", {})
    seed = spec.get("alpha_seed", 0)
    points = []
    for label, unit in bundle.manifest.get("units", {}).items():
        if unit.get("seed") != seed or unit.get("alpha") is None or unit.get("method"):
            continue
        r = bundle.get(label, "xquad-r")
        if r is None:
            continue
        points.append({"alpha": float(unit["alpha"]), "label": label, "mAP": r.macro("multi", "mAP"),
                       "max_rank_distance": r.macro("multi", "max_rank_distance"),
                       "same_lang@10": r.macro("multi", "same_lang@10")})
    return sorted(points, key=lambda p: p["alpha"])


# ------------------------------------------------------------------------------------------------ cells


def _pair_sides(folders_a, folders_b):
    """Both sides' per-pair AP files, or None without them or when they cover other queries or languages."""
    a = [x for x in (pair_values(f) for f in folders_a) if x is not None]
    b = [x for x in (pair_values(f) for f in folders_b) if x is not None]
    if not a or not b or any(x[0] != a[0][0] or x[1] != a[0][1] for x in a + b):
        return None
    return a, b


def delta_languages(folders_a, folders_b) -> list[str]:
    """The query (= pool) languages of a delta map; [] when the folders cannot be compared."""
    sides = _pair_sides(folders_a, folders_b)
    return [] if sides is None else list(sides[0][0][1])


def delta_row(folders_a, folders_b, query_lang: str, n_resamples: int = 2000) -> dict:
    """One row of the delta map: {pool language: (Δ, p, n, ci_low, ci_high)} for the queries in `query_lang`
    (the run-level comparison of experiments/stats.py; cells with fewer than 2 queries are left out)."""
    sides = _pair_sides(folders_a, folders_b)
    if sides is None:
        return {}
    a, b = sides
    ids, langs = a[0][0], a[0][1]
    rows = np.flatnonzero(np.array([q.split(":")[0] for q in ids]) == query_lang)
    out = {}
    for j, y in enumerate(langs):
        def runs(side):
            found = []
            for _, _, ap in side:
                vals = ap[rows, j]
                keep = ~np.isnan(vals)
                found.append({ids[i]: float(v) for i, v in zip(rows[keep], vals[keep])})
            return found
        ra, rb = runs(a), runs(b)
        if min(len(r) for r in ra + rb) < 2:
            continue
        cmp = compare_runs(ra, rb, [float(np.mean(list(r.values()))) for r in ra],
                           [float(np.mean(list(r.values()))) for r in rb], n_resamples=n_resamples)
        out[y] = (cmp.delta, cmp.p, len(ra[0]), cmp.ci_low, cmp.ci_high)
    return out


def delta_frames(rows: dict, langs: list[str]) -> dict:
    """The delta map's frames from its rows (delta_row per query language), p-values adjusted by
    Benjamini-Hochberg over the cells of this one map (they are secondary)."""
    import pandas as pd

    if not langs:
        return {}
    frames = {k: pd.DataFrame(np.nan, index=langs, columns=langs) for k in ("delta", "p", "n", "ci_low", "ci_high")}
    for x, cells in rows.items():
        for y, values in cells.items():
            for key, value in zip(("delta", "p", "n", "ci_low", "ci_high"), values):
                frames[key].loc[x, y] = value
    flat = frames["p"].stack().dropna()  # pandas 3 keeps NaN cells (a task without a diagonal)
    adjusted = pd.Series(benjamini_hochberg(flat.values), index=flat.index).unstack()
    frames["p_adjusted"] = adjusted.reindex(index=langs, columns=langs)
    for frame in frames.values():
        frame.index.name, frame.columns.name = "query language", "candidate language"
    return frames


def delta_cells(folders_a, folders_b, n_resamples: int = 2000) -> dict:
    """Per language pair: Δ AP = mean over b's runs − mean over a's runs, with the run-level comparison of
    experiments/stats.py (two-level bootstrap over runs and question clusters) and p-values adjusted by
    Benjamini-Hochberg over the cells of this one map (they are secondary). {} without per-pair files."""
    langs = delta_languages(folders_a, folders_b)
    return delta_frames({x: delta_row(folders_a, folders_b, x, n_resamples) for x in langs}, langs)


def write_summary(path: Path, n_resamples: int = 10_000) -> dict:
    bundle = load_bundle(path)
    summary = summarise(bundle, n_resamples=n_resamples)
    lines = ["task,setting,metric,group,mean,std,n,values\n"]
    for c in summary["cells"]:
        vals = " ".join("" if v is None else f"{v:.6g}" for v in c["values"])
        mean, std = ("" if c[k] is None else f"{c[k]:.6g}" for k in ("mean", "std"))
        lines.append(f"{c['task']},{c['setting']},{c['metric']},{c['group']},{mean},{std},{c['n']},{vals}\n")
    write_summary_files(Path(path), summary, "".join(lines))
    return summary


def lab_results(root: Path | None = None) -> list[ModelResult]:
    """Evaluations of lab runs as bundle-style results (group "lab:<run id>"), newest first. Reads run folders
    only: the pages that list them never import the training stack (torch, ~8 s cold)."""
    out = []
    for run in list_runs(root):
        for folder in evaluation_folders(run.dir / "evaluations", depth=1):
            try:
                metrics = read_metrics(folder)
            except ResultsError:  # a damaged lab evaluation is left out of the list (the run page names it)
                continue
            cfg = run.config()
            out.append(ModelResult(f"lab:{run.id}", f"lab:{run.id}", cfg.get("seed"), cfg.get("alpha"),
                                   metrics.get("task", folder.name), folder, metrics))
    return out


def thousands(value) -> str:
    """An integer with thousands separators (1,000 steps); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) else str(value)


def training_extent(bundle) -> dict:
    """How far a bundle's fine-tunes trained: steps × batch against the training pairs (epochs), and whether they
    were early-stopped; `text` says it in one sentence, for every page that shows the bundle's verdict. Read from
    the training records with nothing heavy imported (a cold page visit pays no torch import for it)."""
    spec = bundle.manifest.get("spec", {})
    steps, batch = spec.get("steps"), spec.get("batch_size")
    pairs, kept = None, []
    for folder in sorted((bundle.path / "models").glob("*/training")):
        try:
            config = json.loads((folder / "config.json").read_text())
            status = json.loads((folder / "status.json").read_text())
        except (OSError, ValueError):
            continue
        pairs = pairs or config.get("pairs", {}).get("pairs")
        if status.get("best_step") is not None:
            kept.append(int(status["best_step"]))
    stopped = bool(spec.get("train_extra", {}).get("eval_steps"))
    n_steps = thousands(steps)
    if stopped:
        seen = f"kept checkpoints at steps {min(kept)}–{max(kept)}" if kept else "no finished run yet"
        text = (f"early-stopped on held-out paragraphs (at most {n_steps} steps of batch {batch}; {seen}"
                + (f", i.e. {min(kept) * batch / pairs:.1f}–{max(kept) * batch / pairs:.1f} epochs of {pairs:,} "
                   f"training pairs)" if kept and pairs else ")"))
        epochs = [k * batch / pairs for k in kept] if pairs else []
    else:
        epochs = [steps * batch / pairs] if steps and batch and pairs else []
        text = (f"{n_steps} steps of batch {batch} = {steps * batch:,} pairs, about {epochs[0]:.2f} epoch of the "
                f"{pairs:,} training pairs, with no early stopping" if epochs else
                f"{n_steps} steps of batch {batch}")
    return {"early_stopped": stopped, "epochs": epochs, "text": text}
