"""The verdict, computed from a bundle's summary.json under its analysis plan (experiments/plan.py): per
benchmark and setting, the best method, its margin over the runner-up with the interval, and what the comparison
shows. No conclusion is written by hand anywhere.

Reading it: a method is "ahead" only when the comparison's marks p (the larger of the t-based and the exact
permutation p, where both exist), adjusted within its family, is below the plan's alpha -- the rule of the marks.
Otherwise the two are "equivalent within ±m" (the plan's margin m; TOST, adjusted within the family), "not
equivalent" (the 95 % interval lies wholly outside ±m, though the difference is not significant by the marks'
rule), or "undetermined" (neither), with the minimum detectable effect beside it. The 95 % interval shown is the
comparison's own (unadjusted). Transductive methods (fitted on the evaluation pool: `@index`) are never ranked
with inductive ones: `transductive_verdicts` gives them a section of their own.
"""

from __future__ import annotations

from hybridviz.experiments.bundle import SUMMARY_VERSION
from hybridviz.experiments.plan import plan_in
from hybridviz.metrics import LOWER_IS_BETTER

ALPHA = 0.05  # the default plan's; a summary's own plan says its alpha (plan_in(summary).alpha)
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


def current(summary: dict) -> bool:
    """Whether the summary carries the current statistics (else no verdict is read from it)."""
    return summary.get("version", 1) >= SUMMARY_VERSION


def verdicts(summary: dict, task: str, methods: list[str] | None = None, labels=None) -> list[dict]:
    """`labels`: a dict or a function from a method's group name to its display name. Transductive methods are
    left out (they are ranked only among themselves: `transductive_verdicts`)."""
    # One record per verdict cell of `task`: best, runner-up, margin (best − runner-up) with interval, text.
    out = []
    if not current(summary):  # an older schema: recompute it (`summarise`) before reading a verdict
        return out
    plan = plan_in(summary)
    cells = [c for c in summary.get("cells", []) if c["task"] == task and c["mean"] is not None
             and (methods is None or c["group"] in methods) and not c["group"].startswith("hybrid-a")
             and not plan.is_transductive(c["group"])]
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
        record = {"task": task, "setting": setting, "metric": metric, "best": best["group"],
                  "runner_up": runner["group"], "best_value": best["mean"], "runner_value": runner["mean"],
                  **_reading(t, sign, plan)}
        record["text"] = verdict_text(record, labels)
        out.append(record)
    return out


def _reading(t: dict, sign: int, plan) -> dict:
    """A stored test read from x's side (sign: see _test_between): margin with interval, the verdict word, the
    figures behind it."""
    margin, low, high = sign * t["delta"], *sorted((sign * t["ci_low"], sign * t["ci_high"]))
    word = t["verdict"]
    if sign == -1 and word in ("better", "worse"):  # stored as b = the other side
        word = {"better": "worse", "worse": "better"}[word]
    return {"margin": margin, "ci_low": low, "ci_high": high, "p_adjusted": t["p_adjusted"],
            "correction": t["correction"], "pairs_agree": t["pairs_agree"], "n_pairs": t["n_pairs"],
            "detectable": word in ("better", "worse"), "verdict": word, "equivalence_margin": t.get("margin"),
            "p_tost_adjusted": t.get("p_tost_adjusted"), "mde": t["mde"], "mde_family": t.get("mde_family"),
            "marks_test": t.get("marks_test"), "plan": plan.label, "alpha": plan.alpha}


def _pairs_agreeing(agree: int | None, n_pairs: int) -> str:
    # one difference (two single models: the base and a method on it) has no runs to agree or disagree
    return f"; {agree} of {n_pairs} run pairs agree" if n_pairs > 1 and agree is not None else ""


def _namer(labels):
    labels = labels or {}
    return labels if callable(labels) else (lambda g: labels.get(g, g))


def _cell_name(setting: str, metric: str) -> str:
    return f"{SETTING_NAMES[setting]} {METRIC_NAMES.get(metric, metric)}"


def _digits(metric: str) -> int:
    return 1 if metric == "max_rank_distance" else 4


def _figures(delta: float, low: float, high: float, metric: str, p_adjusted: float, correction: str,
             pairs: str) -> str:
    """"+Δ (95 % CI low to high; adjusted p = …, correction; run pairs)", at the metric's precision."""
    digits = _digits(metric)
    return (f"{delta:+.{digits}f} (95 % CI {low:+.{digits}f} to {high:+.{digits}f}; adjusted p = {p_adjusted:.2g}, "
            f"{correction}{pairs})")


def _within(r: dict, metric: str) -> str:
    m = r.get("equivalence_margin")
    return "no equivalence margin" if m is None else f"±{m:.{_digits(metric)}f}"


def _detection(r: dict, metric: str) -> str:
    """"MDE 0.0121, 0.0158 after correction": the smallest difference the comparison would detect."""
    digits = _digits(metric)
    after = f", {r['mde_family']:.{digits}f} after correction" if r.get("mde_family") is not None else ""
    return f"MDE {r['mde']:.{digits}f}{after}"


def _tost(r: dict) -> str:
    p = r.get("p_tost_adjusted")
    return "" if p is None else f"; TOST adjusted p = {p:.2g}"


def _small(r: dict, metric: str) -> str:
    """A detectable difference that the TOST also places within the margin: real, but smaller than the plan
    calls relevant."""
    p = r.get("p_tost_adjusted")
    if p is None or p >= r.get("alpha", ALPHA):
        return ""
    return f"; yet within {_within(r, metric)} (TOST adjusted p = {p:.2g}): detectable, smaller than the margin"


def verdict_text(v: dict, labels=None) -> str:
    name = _namer(labels)
    what = _cell_name(v["setting"], v["metric"])
    lead = "lowest" if v["metric"] in LOWER_IS_BETTER else "highest"
    figures = _figures(v["margin"], v["ci_low"], v["ci_high"], v["metric"], v["p_adjusted"], v["correction"],
                       _pairs_agreeing(v["pairs_agree"], v["n_pairs"]))
    best, runner, within = name(v["best"]), name(v["runner_up"]), _within(v, v["metric"])
    word = v.get("verdict", "better" if v["detectable"] else "undetermined")
    if v["detectable"]:
        return f"{what}: {best} is {lead}, ahead of {runner} by {figures}{_small(v, v['metric'])}."
    if word == "equivalent":
        return (f"{what}: {best} and {runner}, the two {lead}, are equivalent within {within}; margin {figures}"
                f"{_tost(v)}.")
    if word == "not equivalent":
        return (f"{what}: {best} and {runner}, the two {lead}, are not equivalent within {within} (the interval "
                f"lies outside it), but the difference is not significant by the marks' rule; margin {figures}.")
    return (f"{what}: undetermined between {best} and {runner}, the two {lead} -- no detectable difference, and "
            f"equivalence within {within} not shown; margin {figures}; {_detection(v, v['metric'])}{_tost(v)}.")


def comparison_text(summary: dict, task: str, setting: str, metric: str, x: str, y: str, labels=None) -> str | None:
    """One run-level comparison read from the summary, phrased from x's side: "x is better / worse than y by Δ
    (interval; adjusted p; run pairs agreeing)", "equivalent within ±m", "not equivalent within ±m" or
    "undetermined"; None where the summary lacks it."""
    name = _namer(labels)
    found = _test_between(summary, task, setting, metric, x, y)
    if found is None or not current(summary):
        return None
    t, sign = found
    r = _reading(t, sign, plan_in(summary))
    figures = "Δ " + _figures(r["margin"], r["ci_low"], r["ci_high"], metric, r["p_adjusted"], r["correction"],
                              _pairs_agreeing(r["pairs_agree"], r["n_pairs"]))
    what, within = _cell_name(setting, metric), _within(r, metric)
    if r["verdict"] in ("better", "worse"):
        return f"{what}: {name(x)} is {r['verdict']} than {name(y)}; {figures}{_small(r, metric)}"
    if r["verdict"] == "equivalent":
        return f"{what}: {name(x)} and {name(y)} are equivalent within {within}; {figures}{_tost(r)}"
    if r["verdict"] == "not equivalent":
        return (f"{what}: {name(x)} and {name(y)} are not equivalent within {within} (the interval lies outside "
                f"it; not significant by the marks' rule); {figures}")
    return (f"{what}: undetermined between {name(x)} and {name(y)} (no detectable difference; equivalence within "
            f"{within} not shown); {figures}; {_detection(r, metric)}{_tost(r)}")


TRANSDUCTIVE_SECTION = ("transductive (fitted on the evaluation pool and a 20 % sample of the test questions, "
                        "which are evaluated too; not ranked with the inductive methods)")


def transductive_verdicts(summary: dict, task: str, labels=None) -> list[str]:
    """The transductive methods' own section: each one (fitted on the evaluation pool and a sample of the test
    questions) against the base it is applied to and against the best inductive method of each main cell, never
    ranked among the inductive methods."""
    if not current(summary):
        return []
    plan = plan_in(summary)
    groups = {c["group"] for c in summary.get("cells", []) if c["task"] == task and c["mean"] is not None}
    transductive = sorted(g for g in groups if plan.is_transductive(g))
    cells = VERDICT_CELLS_BY_TASK.get(task) or [c for c in VERDICT_CELLS if c[0] == "multi"]
    out = []
    for group in transductive:
        for setting, metric in cells:
            means = {c["group"]: c["mean"] for c in summary.get("cells", []) if c["task"] == task
                     and (c["setting"], c["metric"]) == (setting, metric) and c["mean"] is not None
                     and not plan.is_transductive(c["group"]) and not c["group"].startswith("hybrid-a")}
            if not means:
                continue
            pick = min if metric in LOWER_IS_BETTER else max
            best = pick(means, key=means.get)
            base = group.split("+", 1)[0]
            for other in dict.fromkeys([base, best]):
                line = comparison_text(summary, task, setting, metric, group, other, labels)
                if line:
                    out.append(line + ("" if other == base else " [the best inductive method on this cell]"))
    return out


def training_free_answers(summary: dict, task: str, labels=None) -> dict[str, list[str]]:
    """Issue #14's three questions, per benchmark, from the run-level comparisons: does the best training-free
    method (by multilingual mAP) match each sampler on multilingual mAP and bias? does a training-free method on
    top of a sampler help? what do the methods and the samplers cost monolingual mAP against the base?"""
    plan = plan_in(summary)
    groups = {c["group"] for c in summary.get("cells", []) if c["task"] == task and c["mean"] is not None}
    # the best training-free method is chosen among the inductive ones: a transductive method (fitted on the
    # evaluation pool) is answered apart, under its own key
    free = sorted(g for g in groups if g.startswith("base+") and not plan.is_transductive(g))
    samplers = [g for g in ("x-x-mono", "x-y", "hybrid") if g in groups]
    combined = [g for g in groups if "+" in g and not g.startswith("base+") and not plan.is_transductive(g)]
    # the protocol's own cell (mkqa-mteb), else the multilingual ones; the first chooses the best method
    cells = VERDICT_CELLS_BY_TASK.get(task) or [c for c in VERDICT_CELLS if c[0] == "multi"]
    main = cells[0]
    by_main = {c["group"]: c["mean"] for c in summary.get("cells", []) if c["task"] == task
               and (c["setting"], c["metric"]) == main and c["mean"] is not None}
    out: dict[str, list[str]] = {"training-free vs fine-tuned": [], "combined vs the sampler alone": [],
                                 "monolingual cost against the base": [],
                                 TRANSDUCTIVE_SECTION: transductive_verdicts(summary, task, labels)}
    if not free or not samplers:
        return {k: v for k, v in out.items() if v or k != TRANSDUCTIVE_SECTION}
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
    return {k: [line for line in v if line] for k, v in out.items() if v or k != TRANSDUCTIVE_SECTION}


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
