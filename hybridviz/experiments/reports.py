"""The reports of bundles and summaries (`results.report.Report`): what goes into the headline, verdict,
training-free and robustness reports is assembled here, where the statistics and tables are; the renderers
write them as markdown (the CLI's `summarise --markdown`, `robustness`), LaTeX or CSV. The `*_markdown`
functions are the CLI's."""

from __future__ import annotations

from hybridviz.metrics import LOWER_IS_BETTER
from hybridviz.results.report import Report


def headline_report(summary: dict) -> Report:
    """The headline tables (ours, then the paper's reported rows) with the verdicts, per benchmark."""
    from hybridviz.experiments.plan import plan_in
    from hybridviz.experiments.verdict import TRANSDUCTIVE_SECTION, transductive_verdicts, verdicts
    from hybridviz.paper import reported_headline
    from hybridviz.viz.style import SAMPLER_ORDER, group_label
    from hybridviz.viz.tables import MARK_LEGEND, headline

    plan = plan_in(summary)
    report = Report(preamble=f"Statistics under the {plan.label} ({plan.name}; summary version "
                             f"{summary.get('version', 1)}).", legend=MARK_LEGEND)
    for task in sorted({c["task"] for c in summary.get("cells", [])}):
        display, _ = headline(summary, task)
        lines = [v["text"] for v in verdicts(summary, task, methods=SAMPLER_ORDER, labels=group_label)]
        section = report.section(f"{task} (hybridviz)").table(display)
        section.bullets(lines or ["none yet: no two samplers have a run-level comparison (a trained method needs "
                                  "two seeds, or the other side more than one run)"], lead="Verdict:")
        if any("+" in c["group"] for c in summary.get("cells", [])):
            section.bullets([v["text"] for v in verdicts(summary, task, labels=group_label)],
                            lead="Verdict over every inductive method, training-free ones included:")
        transductive = transductive_verdicts(summary, task, labels=group_label)
        if transductive:
            section.bullets(transductive, lead=f"{TRANSDUCTIVE_SECTION[0].upper()}{TRANSDUCTIVE_SECTION[1:]}:")
        reported = reported_headline(task)
        if len(reported):
            report.section(f"{task} (reported by the paper; not computed here)").table(reported.round(4))
    return report


def training_free_report(summary: dict) -> Report:
    """Per benchmark: the best training-free method against each sampler, each sampler + method against the
    sampler alone, and the monolingual cost against the base -- run-level comparisons."""
    from hybridviz.experiments.verdict import training_free_answers
    from hybridviz.viz.style import group_label

    report = Report()
    for task in sorted({c["task"] for c in summary.get("cells", [])}):
        section = report.section(f"{task}: training-free methods beside the samplers")
        for question, lines in training_free_answers(summary, task, labels=group_label).items():
            if lines:
                section.bullets(lines, lead=f"{question}:")
    return report


def robustness_report(bundles: list) -> Report:
    """The Robustness page's tables and sentences, per benchmark (empty without a run-level sampler verdict)."""
    from hybridviz.experiments.robustness import SAMPLERS, budget_changes, disagreements, robustness_rows
    from hybridviz.viz.style import group_label
    from hybridviz.viz.tables import robustness_table

    rows = robustness_rows([b for b in bundles if set(SAMPLERS) & set(b.groups())], labels=group_label)
    report = Report()
    for task in dict.fromkeys(r["task"] for r in rows):
        chosen = [r for r in rows if r["task"] == task]
        n = len({r["bundle"] for r in chosen})
        section = report.section(f"{task}: {n} set-up{'s' if n > 1 else ''}").table(robustness_table(chosen))
        conflicts = disagreements(chosen, labels=group_label)
        if n == 1:
            section.bullets(["Only one set-up has this benchmark: nothing to compare it with."])
        elif conflicts:  # the page's sentences
            section.bullets(conflicts)
        else:
            section.bullets(["The set-ups do not contradict each other on this benchmark: no two name different "
                             "detectable winners, and no detectable winner ranks last elsewhere."])
        changes = budget_changes(chosen, labels=group_label)  # a 100-step bundle against its converged twin
        if changes:
            section.bullets(changes, lead="The verdict changes with the training budget:")
    return report


def pair_report(bundles: list, a: str, b: str, metric: str) -> Report:
    """The Robustness page's forest plot as a table: Δ (b − a) of `metric` per set-up, benchmark and setting,
    with each bundle's own interval, adjusted p and reading (the run as the unit); empty without one."""
    import pandas as pd

    from hybridviz.experiments.verdict import ALPHA
    from hybridviz.viz.comparison import setup_forest_frame
    from hybridviz.viz.style import group_label

    frame = setup_forest_frame(bundles, a, b, metric, ALPHA)
    if frame.empty:
        return Report()
    f = "{:+.1f}" if metric in LOWER_IS_BETTER else "{:+.4f}"  # rank distances in ranks, scores to 4 places
    table = pd.DataFrame({
        "set-up": frame["row"], "benchmark · setting": frame["benchmark"] + " · " + frame["setting"],
        f"Δ {metric} ({group_label(b)} − {group_label(a)})": [f.format(d) for d in frame["delta"]],
        "95 % CI": [f"[{f.format(lo)}, {f.format(hi)}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"])],
        "adjusted p": [f"{p:.3g} ({c})" for p, c in zip(frame["p_adjusted"], frame["correction"])],
        "run pairs agree": frame["pairs_agree"],
        "reading": [{"better": f"{group_label(b)} better", "worse": f"{group_label(b)} worse"}.get(r, r)
                    for r in frame["reading"]],
        "equivalence": frame["equivalence"]})
    lower = " (lower is better)" if metric in LOWER_IS_BETTER else ""
    report = Report()
    report.section(f"{group_label(b)} − {group_label(a)}: {metric}{lower}, per set-up").table(table)
    return report


def headline_markdown(summary: dict) -> str:
    return headline_report(summary).to_markdown()


def training_free_markdown(summary: dict) -> str:
    return training_free_report(summary).to_markdown()


def robustness_markdown(bundles: list) -> str:
    return robustness_report(bundles).to_markdown()


def pair_markdown(bundles: list, a: str, b: str, metric: str) -> str:
    return pair_report(bundles, a, b, metric).to_markdown()
