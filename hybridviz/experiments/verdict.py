"""The verdict, computed from a bundle's summary.json: per benchmark and setting, the best method, its margin
over the runner-up with the interval, and how many seeds agree. No conclusion is written by hand anywhere.

Reading it: a method is "ahead" only when the comparison's p-value, adjusted within its family (primary: Holm;
secondary: Benjamini-Hochberg), is below .05 -- the same rule as the marks; otherwise "no detectable difference".
The 95 % interval shown is the comparison's own (unadjusted), so it can exclude 0 where the correction for the
family's other tests still leaves the difference undetected.
"""

from __future__ import annotations

from hybridviz.metrics import LOWER_IS_BETTER

ALPHA = 0.05  # on the family-adjusted p, as the marks
SETTING_NAMES = {"mono": "monolingual", "cross": "cross-lingual", "multi": "multilingual"}
METRIC_NAMES = {"mAP": "mAP", "max_rank_distance": "max rank distance", "same_lang@10": "same-language share",
                "nDCG@10": "nDCG@10"}
VERDICT_CELLS = [("mono", "mAP"), ("cross", "mAP"), ("multi", "mAP"), ("multi", "max_rank_distance")]
VERDICT_CELLS_BY_TASK = {"mkqa-mteb": [("mono", "nDCG@10")]}  # MTEB's main score, the protocol's own


def _test_between(summary: dict, task: str, setting: str, metric: str, x: str, y: str) -> tuple[dict, int] | None:
    """The test of x against y in either orientation, and +1 when it is stored as (a=y, b=x), else -1."""
    for t in summary.get("tests", []):
        if t["task"] == task and t["setting"] == setting and t["metric"] == metric:
            if (t["a"], t["b"]) == (y, x):
                return t, 1
            if (t["a"], t["b"]) == (x, y):
                return t, -1
    return None


def verdicts(summary: dict, task: str, methods: list[str] | None = None, labels=None) -> list[dict]:
    """`labels`: a dict or a function from a method's group name to its display name."""
    # One record per verdict cell of `task`: best, runner-up, margin (best − runner-up) with interval, text.
    labels = labels or {}
    out = []
    if summary.get("version", 1) < 2:  # query-level tests only: no run-level verdict to give
        return out
    cells = [c for c in summary.get("cells", []) if c["task"] == task and c["mean"] is not None
             and (methods is None or c["group"] in methods) and not c["group"].startswith("hybrid-a")]
    for setting, metric in VERDICT_CELLS_BY_TASK.get(task, VERDICT_CELLS):
        ranked = [c for c in cells if c["setting"] == setting and c["metric"] == metric]
        if len(ranked) < 2:
            continue
        ranked.sort(key=lambda c: c["mean"], reverse=metric not in LOWER_IS_BETTER)
        best, runner = ranked[0], ranked[1]
        found = _test_between(summary, task, setting, metric, best["group"], runner["group"])
        if found is None:
            continue
        t, sign = found
        margin, low, high = sign * t["delta"], *sorted((sign * t["ci_low"], sign * t["ci_high"]))
        detectable = t["p_adjusted"] is not None and t["p_adjusted"] < ALPHA
        agree = t["seeds_agree"]  # counted against the sign of the stored delta: the same seeds agree either way
        n_seeds = len(t.get("seed_deltas", []))
        record = {"task": task, "setting": setting, "metric": metric, "best": best["group"],
                  "runner_up": runner["group"], "best_value": best["mean"], "runner_value": runner["mean"],
                  "margin": margin, "ci_low": low, "ci_high": high, "p_adjusted": t["p_adjusted"],
                  "correction": t["correction"], "seeds_agree": agree, "n_seeds": n_seeds,
                  "detectable": detectable}
        record["text"] = verdict_text(record, labels)
        out.append(record)
    return out


def _seeds_agreeing(agree: int | None, n_seeds: int) -> str:
    # one difference (two single models: the base and a method on it) has no seeds to agree or disagree
    return f"; {agree} of {n_seeds} seeds agree" if n_seeds > 1 and agree is not None else ""


def _namer(labels):
    labels = labels or {}
    return labels if callable(labels) else (lambda g: labels.get(g, g))


def _cell_name(setting: str, metric: str) -> str:
    return f"{SETTING_NAMES[setting]} {METRIC_NAMES.get(metric, metric)}"


def _figures(delta: float, low: float, high: float, metric: str, p_adjusted: float, correction: str,
             seeds: str) -> str:
    """"+Δ (95 % CI low to high; adjusted p = …, correction; seeds)", at the metric's precision."""
    digits = 1 if metric == "max_rank_distance" else 4
    return (f"{delta:+.{digits}f} (95 % CI {low:+.{digits}f} to {high:+.{digits}f}; adjusted p = {p_adjusted:.2g}, "
            f"{correction}{seeds})")


def verdict_text(v: dict, labels=None) -> str:
    name = _namer(labels)
    what = _cell_name(v["setting"], v["metric"])
    lead = "lowest" if v["metric"] in LOWER_IS_BETTER else "highest"
    figures = _figures(v["margin"], v["ci_low"], v["ci_high"], v["metric"], v["p_adjusted"], v["correction"],
                       _seeds_agreeing(v["seeds_agree"], v["n_seeds"]))
    if not v["detectable"]:
        return (f"{what}: no detectable difference between {name(v['best'])} and {name(v['runner_up'])}, the two "
                f"{lead}; margin {figures}.")
    return f"{what}: {name(v['best'])} is {lead}, ahead of {name(v['runner_up'])} by {figures}."


def comparison_text(summary: dict, task: str, setting: str, metric: str, x: str, y: str, labels=None) -> str | None:
    """One run-level comparison read from the summary, phrased from x's side: "x is better / worse than y by Δ
    (interval; adjusted p; seeds agreeing)" or "no detectable difference"; None where the summary lacks it."""
    name = _namer(labels)
    found = _test_between(summary, task, setting, metric, x, y)
    if found is None:
        return None
    t, sign = found
    delta, (low, high) = sign * t["delta"], sorted((sign * t["ci_low"], sign * t["ci_high"]))
    figures = "Δ " + _figures(delta, low, high, metric, t["p_adjusted"], t["correction"],
                              _seeds_agreeing(t["seeds_agree"], len(t.get("seed_deltas", []))))
    what = _cell_name(setting, metric)
    if t["p_adjusted"] is None or t["p_adjusted"] >= ALPHA:
        return f"{what}: no detectable difference between {name(x)} and {name(y)}; {figures}"
    better = (delta < 0) == (metric in LOWER_IS_BETTER)
    return f"{what}: {name(x)} is {'better' if better else 'worse'} than {name(y)}; {figures}"


def training_free_answers(summary: dict, task: str, labels=None) -> dict[str, list[str]]:
    """Issue #14's three questions, per benchmark, from the run-level comparisons: does the best training-free
    method (by multilingual mAP) match each sampler on multilingual mAP and bias? does a training-free method on
    top of a sampler help? what do the methods and the samplers cost monolingual mAP against the base?"""
    groups = {c["group"] for c in summary.get("cells", []) if c["task"] == task and c["mean"] is not None}
    free = sorted(g for g in groups if g.startswith("base+"))
    samplers = [g for g in ("x-x-mono", "x-y", "hybrid") if g in groups]
    combined = [g for g in groups if "+" in g and not g.startswith("base+")]
    # the protocol's own cell (mkqa-mteb), else the multilingual ones; the first chooses the best method
    cells = VERDICT_CELLS_BY_TASK.get(task) or [c for c in VERDICT_CELLS if c[0] == "multi"]
    main = cells[0]
    by_main = {c["group"]: c["mean"] for c in summary.get("cells", []) if c["task"] == task
               and (c["setting"], c["metric"]) == main and c["mean"] is not None}
    out: dict[str, list[str]] = {"training-free vs fine-tuned": [], "combined vs the sampler alone": [],
                                 "monolingual cost against the base": []}
    if not free or not samplers:
        return out
    best = max(free, key=lambda g: by_main.get(g, float("-inf")))
    for sampler in samplers:
        out["training-free vs fine-tuned"] += [comparison_text(summary, task, *cell, best, sampler, labels)
                                               for cell in cells]
    for group in sorted(combined):
        out["combined vs the sampler alone"] += [comparison_text(summary, task, *cell, group, group.split("+")[0],
                                                                 labels) for cell in cells]
    mono = VERDICT_CELLS_BY_TASK.get(task, [("mono", "mAP")])[0]
    out["monolingual cost against the base"] = [comparison_text(summary, task, *mono, group, "base", labels)
                                                for group in free + samplers]
    # a comparison the summary lacks (translation retrieval has no monolingual setting) gives None: left out
    return {k: [line for line in v if line] for k, v in out.items()}


def star_survival(old: dict, new: dict) -> dict:
    """Of an old summary's query-level stars (p < .05, per checkpoint), how many the run-level statistics keep
    (adjusted p < .05, same pair and cell), per benchmark, with the ones lost. A star whose cell the new summary
    no longer has (the first pooled-answers protocol, once every run is on the second) is neither kept nor lost:
    it is listed under `not_comparable`."""
    current = {(t["task"], t["setting"], t["metric"], t["a"], t["b"]): t for t in new.get("tests", [])}
    out: dict = {}
    for t in old.get("tests", []):
        p = t.get("p_randomisation", t.get("per_checkpoint", {}).get("p_randomisation") if t.get("per_checkpoint")
                  else None)
        if p is None or p >= 0.05:
            continue
        key = (t["task"], t["setting"], t["metric"], t["a"], t["b"])
        # a summary before version 2 pooled answers by the first protocol, kept as mkqa-answers-v1 since protocol 2
        if key[0] == "mkqa-answers" and old.get("version", 1) < 2:
            key = ("mkqa-answers-v1",) + key[1:]
        now = current.get(key)
        entry = out.setdefault(t["task"], {"old_stars": 0, "kept": 0, "lost": [], "not_comparable": []})
        name = f"{t['b']} vs {t['a']} · {t['setting']} {t['metric']}"
        if now is None:
            entry["not_comparable"].append(name)
            continue
        entry["old_stars"] += 1
        kept = now.get("p_adjusted") is not None and now["p_adjusted"] < 0.05
        entry["kept"] += kept
        if not kept:
            entry["lost"].append(f"{name} (run-level p {now['p']:.2g}, adjusted {now['p_adjusted']:.2g})")
    return out
