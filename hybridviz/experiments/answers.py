"""Issue #31's five questions, answered from a converged (early-stopped) bundle's summary and its 100-step twins:

1. At convergence, is hybrid still ahead of X-X-mono on multilingual retrieval, on XQuAD-R and on MKQA?
2. Are hybrid and X-Y equivalent within the margin, or is there a winner?
3. Does fine-tuning still cost monolingual mAP?
4. Does MKQA follow XQuAD-R, or not?
5. Which 100-step verdicts changed?

Nothing here is a new statistic: every line is a run-level comparison the bundle's summary already holds, read
under the bundle's own analysis plan (`verdict.comparison_text`: Δ with its 95 % interval, adjusted p, the run
pairs agreeing, the equivalence reading against the plan's margin and the MDE), the Overview's sentence on MKQA
(`effects.follows_sentence`) and the Robustness page's budget sentences (`robustness.budget_changes`). The short
answer in front of each list is a tally of those readings, never a claim of its own.
"""

from __future__ import annotations

from pathlib import Path

from hybridviz.experiments.effects import TASK_NAMES, follows_reference, follows_sentence, hybrid_effects
from hybridviz.experiments.plan import plan_in
from hybridviz.experiments.robustness import (SAMPLERS, budget_changes, robustness_rows, setup_from, setup_of,
                                              twin_key)
from hybridviz.experiments.verdict import VERDICT_CELLS, _reading, _test_between, comparison_text, current
from hybridviz.results.format import ResultsError
from hybridviz.results.store import read_manifest

QUESTIONS = {
    "ahead": "At convergence, is hybrid still ahead of X-X-mono on multilingual retrieval, on XQuAD-R and on MKQA?",
    "x-y": "Are hybrid and X-Y equivalent within the margin, or is there a winner?",
    "mono": "Does fine-tuning still cost monolingual mAP?",
    "mkqa": "Does MKQA follow XQuAD-R, or not?",
    "budget": "Which 100-step verdicts changed?",
}
MULTI_TASKS = ("xquad-r", "mkqa-queries", "mkqa-answers")  # the benchmarks with a multilingual pool
MONO_CELLS = {"xquad-r": ("mono", "mAP"), "mkqa-answers": ("mono", "mAP"), "mkqa-mteb": ("mono", "nDCG@10")}
MULTI_CELLS = [c for c in VERDICT_CELLS if c[0] == "multi"]  # multilingual mAP and max rank distance
WORDS = {"better": "ahead", "worse": "behind", "equivalent": "equivalent within ±m",
         "not equivalent": "not equivalent, not significant", "undetermined": "undetermined"}
BASE_WORDS = {**WORDS, "better": "above the base", "worse": "below the base (a cost)",
              "equivalent": "equivalent to the base within ±m"}


def counterparts(bundle, folders: list[Path]) -> list[Path]:
    """The folders among `folders` whose bundles trained what `bundle` trained (encoder, data, batch:
    robustness.twin_key) in the other regime: its 100-step twins when it is early-stopped, its converged twins
    when not. Only manifests are read; a folder without a readable one is passed over (the pages name it)."""
    mine = setup_of(bundle)
    out = []
    for folder in folders:
        if Path(folder).resolve() == Path(bundle.path).resolve():
            continue
        try:
            other = setup_from(Path(folder), read_manifest(Path(folder)))
        except ResultsError:
            continue
        if twin_key(other) == twin_key(mine) and other["early_stopped"] != mine["early_stopped"]:
            out.append(Path(folder))
    return out


def _word(summary: dict, task: str, setting: str, metric: str, x: str, y: str, words: dict = WORDS) -> str | None:
    """The reading of x against y in a few words ("ahead", "behind", "equivalent within ±m", ...), or None."""
    found = _test_between(summary, task, setting, metric, x, y)
    if found is None:
        return None
    r = _reading(*found, plan_in(summary))
    word = words.get(r["verdict"])
    small = r["detectable"] and r["p_tost_adjusted"] is not None and r["p_tost_adjusted"] < r["alpha"]
    return None if word is None else word + (" (by less than ±m: TOST)" if small else "")


def _tally(parts: list[tuple[str, str | None]]) -> str:
    """"XQuAD-R ahead; MKQA queries undetermined": one reading per benchmark, those with none left out."""
    shown = [f"{TASK_NAMES.get(t, t)}: {w}" for t, w in parts if w]
    return "; ".join(shown) if shown else "not measured in this bundle"


def _lines(summary: dict, cells: list[tuple[str, str, str]], x: str, y: str, labels) -> list[str]:
    out = []
    for task, setting, metric in cells:
        text = comparison_text(summary, task, setting, metric, x, y, labels)
        if text:
            out.append(f"{TASK_NAMES.get(task, task)} · {text}")
    return out


def convergence_answers(bundle, twins: list | None = None, labels=None) -> list[dict]:
    """The five questions for `bundle` (a converged bundle; any sampler bundle is read the same way): one record
    each, {"key", "question", "answer" (the tally), "lines" (the comparisons behind it, with intervals)}.
    `twins`: the 100-step bundles to compare verdicts with (`counterparts`); None or empty: question 5 says there is
    none. Empty for a summary older than the current statistics."""
    summary = bundle.summary
    if not current(summary):
        return []
    out = []

    # 1. hybrid against X-X-mono on the multilingual cells of each benchmark with a multilingual pool
    cells = [(t, s, m) for t in MULTI_TASKS for s, m in MULTI_CELLS]
    tally = _tally([(t, _word(summary, t, "multi", "mAP", "hybrid", "x-x-mono")) for t in MULTI_TASKS])
    out.append({"key": "ahead", "answer": f"hybrid against X-X-mono on multilingual mAP — {tally}",
                "lines": _lines(summary, cells, "hybrid", "x-x-mono", labels)})

    # 2. hybrid against X-Y: the same cells, read for equivalence
    tally = _tally([(t, _word(summary, t, "multi", "mAP", "hybrid", "x-y")) for t in MULTI_TASKS])
    out.append({"key": "x-y", "answer": f"hybrid against X-Y on multilingual mAP — {tally}",
                "lines": _lines(summary, cells, "hybrid", "x-y", labels)})

    # 3. each sampler against the base on the monolingual cell of each benchmark that has one
    mono = [(t, *MONO_CELLS[t]) for t in MONO_CELLS]
    lines, parts = [], []
    for sampler in SAMPLERS:
        lines += _lines(summary, mono, sampler, "base", labels)
    for task, setting, metric in mono:
        words = [_word(summary, task, setting, metric, s, "base", BASE_WORDS) for s in SAMPLERS]
        if any(words):
            counts = {w: words.count(w) for w in dict.fromkeys(w for w in words if w)}
            parts.append((task, ", ".join(f"{n} sampler{'s' if n > 1 else ''} {w}" for w, n in counts.items())))
    out.append({"key": "mono", "answer": "each sampler against the base (one run) on the monolingual cell — "
                + _tally(parts), "lines": lines})

    # 4. the Overview's sentence, from the same effects
    effects = hybrid_effects(summary)
    sentence = follows_sentence(follows_reference(effects), effects)
    answer, _, why = sentence.partition("? ")[2].partition(": ")  # "Does MKQA follow XQuAD-R? Yes: of the ..."
    out.append({"key": "mkqa", "answer": answer, "lines": [why] if why else []})

    # 5. the Robustness page's budget sentences against each twin
    twins = [t for t in twins or [] if set(SAMPLERS) & set(t.groups())]
    if not twins:
        out.append({"key": "budget", "answer": "no 100-step twin (same encoder, data and batch) to compare with",
                    "lines": []})
    else:
        rows = robustness_rows([*twins, bundle], labels=labels)
        changed = budget_changes(rows, labels)
        mine = [r for r in rows if r["bundle"] == setup_of(bundle)["bundle"]]
        n = len({(r["task"], r["setting"], r["metric"]) for r in mine})
        names = ", ".join(setup_of(t)["bundle"] for t in twins)
        out.append({"key": "budget", "answer": f"{len(changed)} change{'s' if len(changed) != 1 else ''} over "
                    f"{n} verdict cells against {names}", "lines": changed or
                    ["No verdict changes with the budget: every cell reads the same at 100 steps and converged."]})
    for record in out:
        record["question"] = QUESTIONS[record["key"]]
    return out


def answers_markdown(bundle, twins: list | None = None, labels=None) -> str:
    """The five answers as markdown (the CLI's `answers`; the Overview shows the same records)."""
    records = convergence_answers(bundle, twins, labels)
    if not records:
        return ""
    plan = plan_in(bundle.summary)
    head = (f"## {setup_of(bundle)['bundle']}: the converged regime's questions\n\nUnder the {plan.label} "
            f"(`{plan.name}`); Δ = first − second, 95 % interval, p adjusted in the plan's family; ±m is the "
            f"plan's equivalence margin.\n")
    body = []
    for i, r in enumerate(records, 1):
        body.append(f"{i}. **{r['question']}** {r['answer']}.")
        body += [f"   - {line}" for line in r["lines"]]
    return head + "\n" + "\n".join(body) + "\n"
