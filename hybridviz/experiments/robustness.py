"""Does the verdict hold beyond one set-up? One row per result bundle and verdict cell: the set-up that bundle
trained (encoder, training data, batch size, step budget), the sampler verdict it computes (verdict.py, the run
as the unit), and the cost of fine-tuning on monolingual mAP against its own base model. Where set-ups that
reach a detectable verdict name different winners, or where one set-up's winner is detectably behind in another,
`disagreements` says so.

Only bundles that trained samplers take part; each is read through its own summary.json, so a row's interval,
correction and seeds are those of that bundle's statistics.
"""

from __future__ import annotations

from pathlib import Path

from hybridviz.experiments.bundle import Bundle
from hybridviz.experiments.verdict import VERDICT_CELLS, VERDICT_CELLS_BY_TASK, verdicts
from hybridviz.metrics import LOWER_IS_BETTER

SAMPLERS = ("x-x-mono", "x-y", "hybrid")


def bundle_name(bundle: Bundle | Path) -> str:
    """A bundle's name in tables: its folder's name; a study's (cache/studies/<name>) is `study:<name>`, and
    `(partial)` while it has not finished. A bundle or its folder."""
    from hybridviz.experiments import study

    path = Path(getattr(bundle, "path", bundle))
    if not (path / study.STUDY).exists():
        return path.name
    return f"study:{path.name}" + (" (partial)" if study.partial(path) else "")


def setup_of(bundle: Bundle) -> dict:
    """What a bundle trained: encoder, training data, batch size, steps, precision, and its seeds."""
    return setup_from(bundle.path, bundle.manifest)


def setup_from(path: Path, manifest: dict) -> dict:
    """`setup_of` from a bundle's folder and manifest alone (nothing else of the bundle read)."""
    spec = manifest.get("spec", {})
    return {"bundle": bundle_name(path), "model": spec.get("model", "me5-small"),
            "train_data": spec.get("train_data", "mlqa-r"), "batch_size": spec.get("batch_size"),
            "steps": spec.get("steps"), "precision": spec.get("precision"),
            "train_precision": spec.get("train_precision", "bf16"), "seeds": len(spec.get("seeds", [])),
            "early_stopped": bool(spec.get("train_extra", {}).get("eval_steps"))}


def _test(summary: dict, task: str, setting: str, metric: str, a: str, b: str) -> dict | None:
    return next((t for t in summary.get("tests", []) if (t["task"], t["setting"], t["metric"], t["a"], t["b"]) ==
                 (task, setting, metric, a, b)), None)


def _ranking(summary: dict, task: str, setting: str, metric: str, lower_is_better: bool) -> list[str]:
    cells = [c for c in summary.get("cells", []) if (c["task"], c["setting"], c["metric"]) == (task, setting, metric)
             and c["group"] in SAMPLERS and c["mean"] is not None]
    return [c["group"] for c in sorted(cells, key=lambda c: c["mean"], reverse=not lower_is_better)]


def robustness_rows(bundles: list[Bundle], tasks: list[str] | None = None, labels=None) -> list[dict]:
    """One record per (bundle, task, verdict cell) among the samplers: the set-up, the verdict record (best,
    runner-up, margin, interval, adjusted p, run pairs agreeing, verdict word, MDE, plan, text), the samplers'
    order by mean, and, for monolingual mAP, each sampler's Δ against the bundle's base model with its interval."""
    rows = []
    for bundle in bundles:
        summary = bundle.summary
        if not set(SAMPLERS) & set(bundle.groups()):
            continue
        setup = setup_of(bundle)
        for task in bundle.tasks():
            if tasks is not None and task not in tasks:
                continue
            found = {(v["setting"], v["metric"]): v for v in verdicts(summary, task, list(SAMPLERS), labels)}
            for setting, metric in VERDICT_CELLS_BY_TASK.get(task, VERDICT_CELLS):
                v = found.get((setting, metric))
                if v is None:
                    continue
                row = {**setup, "task": task, **v,
                       "ranking": _ranking(summary, task, setting, metric, metric in LOWER_IS_BETTER)}
                if (setting, metric) in (("mono", "mAP"), ("mono", "nDCG@10")):
                    for sampler in SAMPLERS:
                        t = _test(summary, task, setting, metric, "base", sampler)
                        if t is not None:
                            row[f"vs_base_{sampler}"] = {"delta": t["delta"], "ci_low": t["ci_low"],
                                                         "ci_high": t["ci_high"], "p_adjusted": t["p_adjusted"]}
                rows.append(row)
    return rows


def disagreements(rows: list[dict], labels=None) -> list[str]:
    """Sentences naming the verdict cells where set-ups disagree: two set-ups find different detectable
    winners, or one set-up's detectable winner comes last among the samplers in another."""
    labels = labels or {}
    name = labels if callable(labels) else (lambda g: labels.get(g, g))
    by_cell: dict = {}
    for r in rows:
        by_cell.setdefault((r["task"], r["setting"], r["metric"]), []).append(r)
    out = []
    for (task, setting, metric), cell in by_cell.items():
        if len(cell) < 2:
            continue
        winners = {r["best"] for r in cell if r["detectable"]}
        what = f"{task} · {setting} {metric}"
        if len(winners) > 1:
            out.append(f"{what}: set-ups name different winners — " + "; ".join(
                f"{name(r['best'])} in {r['bundle']}" for r in cell if r["detectable"]) + ".")
            continue
        for winner in winners:
            last_in = [r["bundle"] for r in cell if r["ranking"] and r["ranking"][-1] == winner]
            if last_in:
                out.append(f"{what}: {name(winner)} leads detectably in "
                           f"{', '.join(r['bundle'] for r in cell if r['detectable'] and r['best'] == winner)} "
                           f"but ranks last among the samplers in {', '.join(last_in)}.")
    return out


def twin_key(row: dict) -> tuple:
    """What makes two set-ups twins that differ only in how long they trained: encoder, data, batch."""
    return (row["model"], row["train_data"], row["batch_size"])


def budget_changes(rows: list[dict], labels=None) -> list[str]:
    """One sentence per verdict cell whose verdict changes between a 100-step bundle and its converged
    (early-stopped) twin: same encoder, training data and batch, the regime alone different."""
    name = labels if callable(labels) else (lambda g: (labels or {}).get(g, g))
    by_cell: dict = {}
    for r in rows:
        by_cell.setdefault((twin_key(r), r["task"], r["setting"], r["metric"]), []).append(r)

    def reading(r):
        return f"{name(r['best'])} {r['verdict']}" if r["detectable"] else r["verdict"]

    out = []
    for (_, task, setting, metric), cell in by_cell.items():
        short = [r for r in cell if not r.get("early_stopped")]
        converged = [r for r in cell if r.get("early_stopped")]
        for a in short:
            for b in converged:
                if (a["detectable"], a["best"] if a["detectable"] else None, a["verdict"]) == \
                        (b["detectable"], b["best"] if b["detectable"] else None, b["verdict"]):
                    continue
                out.append(f"{task} · {setting} {metric}: at {a['steps']} steps ({a['bundle']}) "
                           f"{reading(a)} (best {name(a['best'])}); converged ({b['bundle']}) {reading(b)} "
                           f"(best {name(b['best'])}).")
    return out
