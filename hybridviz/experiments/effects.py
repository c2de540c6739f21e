"""The Overview's one picture and its one sentence: the hybrid sampler's effect against X-X-mono and against X-Y,
per benchmark and setting, read from a bundle's summary.json, and whether MKQA follows XQuAD-R.

Effects measured on different pools are not on one scale: one point of mAP on XQuAD-R's 13,014 sentences is not
one point on MKQA's answer pool, and a rank distance counts ranks in pools of different sizes. Two readings follow
from that, both computed here from the summary and nothing else:

- **The picture** (`hybrid_effects`): each effect Δ = hybrid − comparator with its 95 % interval, divided by that
  comparison's own equivalence margin m (the analysis plan's smallest difference it calls relevant: one point of
  mAP; 2 % of the base's max rank distance on the same benchmark, which scales with the pool), and oriented so
  that a positive value means hybrid is better (rank distance: lower is better). On that axis the verdict's
  own thresholds sit at ±1 for every cell, so the reader sees each effect against the line that decides it. The
  colour is the summary's verdict, from hybrid's side.
- **The sentence** (`follows_reference`, `follows_sentence`): MKQA follows XQuAD-R in a cell when the two
  reach the *same decided verdict* on it: hybrid better, worse, or equivalent within ±m. Sizes are never
  compared across pools, only these categories, each decided by the plan's tests within its own benchmark.
  A cell where either side is "undetermined" or "not equivalent" (the interval lies outside ±m, but the
  difference is not significant by the marks' rule) is open: it neither agrees nor disagrees.
"""

from __future__ import annotations

from hybridviz.experiments.plan import plan_in
from hybridviz.experiments.verdict import METRIC_NAMES, SETTING_NAMES, _reading, _test_between, current
from hybridviz.metrics import LOWER_IS_BETTER

REFERENCE_TASK = "xquad-r"
MKQA_TASKS = ("mkqa-queries", "mkqa-answers", "mkqa-mteb")  # the protocols compared with XQuAD-R
EFFECT_TASKS = (REFERENCE_TASK, *MKQA_TASKS)
COMPARATORS = ("x-x-mono", "x-y")
SAMPLERS = ("hybrid", *COMPARATORS)
# the verdict cells of every benchmark (experiments/verdict.py), mAP in each setting and the multilingual bias
EFFECT_CELLS = (("mono", "mAP"), ("cross", "mAP"), ("multi", "mAP"), ("multi", "max_rank_distance"))
DECIDED = ("better", "worse", "equivalent")  # the categories that can agree or disagree
TASK_NAMES = {"xquad-r": "XQuAD-R", "mkqa-queries": "MKQA queries", "mkqa-answers": "MKQA answers",
              "mkqa-mteb": "MKQA · MTEB"}
COMPARATOR_NAMES = {"x-x-mono": "X-X-mono", "x-y": "X-Y"}
METHOD = ("by verdict category only (hybrid better, worse, or equivalent within the plan's margin ±m, each "
          "decided by the plan's tests within its own benchmark), never by size: the effects are measured on "
          "different pools")


def cell_name(setting: str, metric: str) -> str:
    """'multilingual mAP', 'multilingual max rank distance'."""
    return f"{SETTING_NAMES[setting]} {METRIC_NAMES.get(metric, metric)}"


def hybrid_effects(summary: dict) -> list[dict]:
    """One record per benchmark (EFFECT_TASKS), cell (EFFECT_CELLS) and comparator the summary holds: hybrid's
    effect Δ = hybrid − comparator in the metric's units with its 95 % interval, the equivalence margin m, the
    verdict from hybrid's side (`within_margin`: a detectable difference that the TOST also places within ±m),
    and the same effect in units of m oriented so that positive = hybrid better
    (`effect`, `effect_low`, `effect_high`). A test without a margin (a plan without one for the metric) keeps
    its Δ but has no effect in margins (None). Empty for a summary older than the current statistics."""
    if not current(summary):
        return []
    plan = plan_in(summary)
    out = []
    for task in EFFECT_TASKS:
        for setting, metric in EFFECT_CELLS:
            for comparator in COMPARATORS:
                found = _test_between(summary, task, setting, metric, "hybrid", comparator)
                if found is None:
                    continue
                test, sign = found
                r = _reading(test, sign, plan)
                m = test.get("margin")
                orient = -1.0 if metric in LOWER_IS_BETTER else 1.0
                if m:
                    low, high = sorted((orient * r["ci_low"] / m, orient * r["ci_high"] / m))
                    effect = orient * r["margin"] / m
                else:
                    effect = low = high = None
                n = {"hybrid": test["n_b"] if sign == 1 else test["n_a"],
                     "comparator": test["n_a"] if sign == 1 else test["n_b"]}
                out.append({"task": task, "setting": setting, "metric": metric, "comparator": comparator,
                            "delta": r["margin"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                            "equivalence_margin": m, "verdict": r["verdict"], "p_adjusted": r["p_adjusted"],
                            "correction": r["correction"], "family": test.get("family"),
                            "p_tost_adjusted": r["p_tost_adjusted"],
                            # detectable, yet the TOST places it within ±m too: real, smaller than the plan's margin
                            "within_margin": r["verdict"] in ("better", "worse")
                            and r["p_tost_adjusted"] is not None and r["p_tost_adjusted"] < plan.alpha,
                            "effect": effect, "effect_low": low, "effect_high": high,
                            "n_hybrid": n["hybrid"], "n_comparator": n["comparator"]})
    return out


def effects_missing(summary: dict, effects: list[dict]) -> list[str]:
    """What the picture cannot show for this bundle, in words: a sampler without runs, a benchmark not evaluated,
    the cells a benchmark does not measure, an effect without a margin."""
    groups = {c["group"] for c in summary.get("cells", []) if c.get("mean") is not None}
    tasks = {c["task"] for c in summary.get("cells", []) if c.get("mean") is not None}
    out = []
    lacking = [COMPARATOR_NAMES.get(s, s) for s in SAMPLERS if s not in groups]
    if lacking:
        out.append(f"no runs of {', '.join(lacking)} in this bundle")
    absent = [TASK_NAMES[t] for t in EFFECT_TASKS if t not in tasks]
    if absent:
        out.append(f"not evaluated: {', '.join(absent)}")
    shown = {(e["task"], e["setting"], e["metric"]) for e in effects}
    if "hybrid" in groups and any(c in groups for c in COMPARATORS):
        for task in EFFECT_TASKS:
            if task not in tasks:
                continue
            gaps = [cell_name(*cell) for cell in EFFECT_CELLS if (task, *cell) not in shown]
            if gaps:
                out.append(f"{TASK_NAMES[task]} does not measure {', '.join(gaps)}")
    no_margin = sorted({f"{TASK_NAMES[e['task']]} {cell_name(e['setting'], e['metric'])}" for e in effects
                        if e["effect"] is None})
    if no_margin:
        out.append(f"no equivalence margin, so not drawn: {', '.join(no_margin)}")
    return out


def follows_reference(effects: list[dict]) -> dict:
    """Per cell and comparator that XQuAD-R and an MKQA protocol both measure: "agree" (the same decided verdict),
    "disagree" (two different decided verdicts) or "open" (either is undetermined or not equivalent). Returns
    {"pairs": [{task, setting, metric, comparator, reference, verdict, outcome, within_margin}], "agree",
    "disagree", "open" (counts), "answer": "yes" | "yes where decided" | "partly" | "no" | "undetermined" | None
    (nothing to compare), "protocols": the MKQA protocols compared}. A pair's `within_margin`: the sides (tasks)
    whose better/worse the TOST also places within ±m (detectable, smaller than the margin)."""
    ref = {(e["setting"], e["metric"], e["comparator"]): e["verdict"] for e in effects
           if e["task"] == REFERENCE_TASK}
    within = {(e["setting"], e["metric"], e["comparator"]): e.get("within_margin", False) for e in effects
              if e["task"] == REFERENCE_TASK}
    pairs = []
    for e in effects:
        key = (e["setting"], e["metric"], e["comparator"])
        if e["task"] not in MKQA_TASKS or key not in ref:
            continue
        a, b = ref[key], e["verdict"]
        outcome = ("open" if a not in DECIDED or b not in DECIDED else "agree" if a == b else "disagree")
        small = [t for t, w in ((REFERENCE_TASK, within[key]), (e["task"], e["within_margin"])) if w]
        pairs.append({"task": e["task"], "setting": e["setting"], "metric": e["metric"],
                      "comparator": e["comparator"], "reference": a, "verdict": b, "outcome": outcome,
                      "within_margin": small})
    counts = {k: sum(p["outcome"] == k for p in pairs) for k in ("agree", "disagree", "open")}
    if not pairs:
        answer = None
    elif counts["agree"] and counts["disagree"]:
        answer = "partly"
    elif counts["disagree"]:
        answer = "no"
    elif counts["agree"]:
        answer = "yes" if not counts["open"] else "yes where decided"
    else:
        answer = "undetermined"
    return {"pairs": pairs, **counts, "answer": answer,
            "protocols": list(dict.fromkeys(p["task"] for p in pairs))}


def _verdict_phrase(verdict: str, comparator: str) -> str:
    name = COMPARATOR_NAMES.get(comparator, comparator)
    return {"better": f"hybrid better than {name}", "worse": f"hybrid worse than {name}",
            "equivalent": f"hybrid equivalent to {name}"}.get(verdict, f"{verdict} against {name}")


def _and(items: list[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _agreements(pairs: list[dict]) -> str:
    """"hybrid better than X-X-mono on multilingual mAP and multilingual max rank distance (MKQA queries, MKQA
    answers)": the agreeing cells, grouped by comparator, verdict and the protocols that share them."""
    cells: dict[tuple, list[str]] = {}
    for p in pairs:
        cells.setdefault((p["comparator"], p["setting"], p["metric"], p["reference"]), []).append(p["task"])
    groups: dict[tuple, list[str]] = {}
    for (comparator, setting, metric, verdict), tasks in cells.items():
        groups.setdefault((comparator, verdict, tuple(tasks)), []).append(cell_name(setting, metric))
    return "; ".join(f"{_verdict_phrase(verdict, comparator)} on {_and(names)} in "
                     f"{_and([TASK_NAMES[t] for t in tasks])}"
                     for (comparator, verdict, tasks), names in groups.items())


def _disagreements(pairs: list[dict]) -> str:
    """"monolingual mAP against X-Y: better on XQuAD-R, equivalent on MKQA answers and MKQA · MTEB"."""
    cells: dict[tuple, dict[str, list[str]]] = {}
    for p in pairs:
        by = cells.setdefault((p["comparator"], p["setting"], p["metric"], p["reference"]), {})
        by.setdefault(p["verdict"], []).append(TASK_NAMES[p["task"]])
    return "; ".join(f"{cell_name(s, m)} against {COMPARATOR_NAMES.get(c, c)}: {ref} on XQuAD-R, "
                     + ", ".join(f"{v} on {_and(ts)}" for v, ts in by.items())
                     for (c, s, m, ref), by in cells.items())


def follows_sentence(result: dict, effects: list[dict] | None = None) -> str:
    """The one sentence under the picture, from `follows_reference`'s result: the answer, the counts, each
    agreement and disagreement named. `effects` (optional) lets it say which side is missing when there is
    nothing to compare. The method (`METHOD`) goes beside it, in the caption."""
    if result["answer"] is None:
        tasks = {e["task"] for e in effects or []}
        if REFERENCE_TASK not in tasks:
            why = "this bundle has no hybrid effect on XQuAD-R to compare with"
        elif not tasks & set(MKQA_TASKS):
            why = "this bundle has no hybrid effect on an MKQA protocol"
        else:
            why = "XQuAD-R and MKQA share no cell in this bundle"
        return f"Does MKQA follow XQuAD-R? This cannot be answered here: {why}."
    answer = {"yes": "Yes", "yes where decided": "Yes, where both are decided", "partly": "Partly",
              "no": "No", "undetermined": "Undetermined"}[result["answer"]]
    pairs, n = result["pairs"], len(result["pairs"])
    parts = []
    agree = [p for p in pairs if p["outcome"] == "agree"]
    disagree = [p for p in pairs if p["outcome"] == "disagree"]
    if agree:
        small = [f"on {_and([TASK_NAMES[t] for t in p['within_margin']])} in {cell_name(p['setting'], p['metric'])} "
                 f"against {COMPARATOR_NAMES.get(p['comparator'], p['comparator'])}" for p in agree
                 if p["within_margin"]]
        note = (f"; though {'; '.join(small)} the effect, while detectable, lies within the margin ±m by the TOST"
                if small else "")
        parts.append(f"agrees with it in {len(agree)} ({_agreements(agree)}{note})")
    if disagree:
        # a detectable difference within ±m on one side and "equivalent" on the other both place the effect
        # inside the margin: the categories differ, not the sizes beyond it; say so beside the disagreement
        near = [p for p in disagree if p["within_margin"] and "equivalent" in (p["reference"], p["verdict"])]
        sides = dict.fromkeys(
            f"{TASK_NAMES[t]}'s {p['reference'] if t == REFERENCE_TASK else p['verdict']} in "
            f"{cell_name(p['setting'], p['metric'])} against {COMPARATOR_NAMES.get(p['comparator'], p['comparator'])}"
            for p in near for t in p["within_margin"])
        note = (f"; in {len(near)} of them the detectable side ({'; '.join(sides)}) also lies within the margin ±m "
                "by the TOST, as the other side's equivalence does: they differ in category, not in size beyond "
                "the margin" if near else "")
        parts.append(f"disagrees in {len(disagree)} ({_disagreements(disagree)}{note})")
    if result["open"]:
        parts.append(f"leaves {result['open']} open (undetermined or not significant on one side or both)")
    protocols = _and([TASK_NAMES[t] for t in result["protocols"]])
    return (f"Does MKQA follow XQuAD-R? {answer}: of the {n} hybrid comparison{'s' if n != 1 else ''} measured on "
            f"both XQuAD-R and MKQA ({protocols}), MKQA {_and(parts)}.")
