"""The markdown renderers of the command line: headline and verdict tables, the Robustness page's tables, the
training-free comparisons, and an evaluation's summary lines. Kept together, unchanged, so that they can move
into the results package's report module in one piece."""

from __future__ import annotations

from hybridviz.metrics import LOWER_IS_BETTER


def summary_table(report: dict) -> str:
    """Headline figures: macro mAP per setting, and the multilingual bias figures."""
    lines = [f"{report['task']} | {report['model']['label']} | languages: {', '.join(report['languages'])}"]
    for setting, res in report["settings"].items():
        if "not_applicable" in res:
            lines.append(f"  {setting:<6} {res['not_applicable']}")
            continue
        m = res["macro"]
        line = f"  {setting:<6} mAP {m['mAP']:.4f}  R@1 {m['R@1']:.4f}  R@10 {m['R@10']:.4f}  " \
               f"nDCG@10 {m['nDCG@10']:.4f}  MRR {m['MRR']:.4f}"
        if setting == "multi":
            line += f"  | max rank distance {m['max_rank_distance']:.1f}  same-lang@10 {m['same_lang@10']:.3f}" \
                    f"  rank corr {res['mean_rank_correlation']['macro']:.3f}"
        lines.append(line)
    return "\n".join(lines)


def pair_markdown(bundles: list, a: str, b: str, metric: str) -> str:
    """The Robustness page's forest plot as a table: Δ (b − a) of `metric` per set-up, benchmark and setting,
    with each bundle's own interval, adjusted p and reading (the run as the unit)."""
    import pandas as pd

    from hybridviz.experiments.verdict import ALPHA
    from hybridviz.viz.comparison import setup_forest_frame
    from hybridviz.viz.style import group_label

    frame = setup_forest_frame(bundles, a, b, metric, ALPHA)
    if frame.empty:
        return ""
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
    return (f"### {group_label(b)} − {group_label(a)}: {metric}{lower}, per set-up\n\n"
            + _markdown_table(table))


def robustness_markdown(bundles: list) -> str:
    """The Robustness page's tables and sentences, per benchmark, as markdown (for notes and reports)."""
    from hybridviz.experiments.robustness import SAMPLERS, disagreements, robustness_rows
    from hybridviz.viz.style import group_label
    from hybridviz.viz.tables import robustness_table

    rows = robustness_rows([b for b in bundles if set(SAMPLERS) & set(b.groups())], labels=group_label)
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        chosen = [r for r in rows if r["task"] == task]
        n = len({r["bundle"] for r in chosen})
        out += ["", f"### {task}: {n} set-up{'s' if n > 1 else ''}", "", _markdown_table(robustness_table(chosen)), ""]
        conflicts = disagreements(chosen, labels=group_label)
        if n == 1:
            out.append("- Only one set-up has this benchmark: nothing to compare it with.")
        elif conflicts:  # the page's sentences
            out += [f"- {c}" for c in conflicts]
        else:
            out.append("- The set-ups do not contradict each other on this benchmark: no two name different "
                       "detectable winners, and no detectable winner ranks last elsewhere.")
    return "\n".join(out)


def _markdown_table(frame) -> str:
    cols = list(frame.columns)
    def cell(v) -> str:
        return "" if v is None or v != v else f"{v:.3g}" if isinstance(v, float) else str(v)

    rows = [" | ".join(map(cell, row)) for row in frame.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), *("| " + r + " |" for r in rows)])


def training_free_markdown(summary: dict) -> str:
    """Per benchmark: the best training-free method against each sampler, each sampler + method against the
    sampler alone, and the monolingual cost against the base -- run-level comparisons, as markdown."""
    from hybridviz.experiments.verdict import training_free_answers
    from hybridviz.viz.style import group_label

    out = []
    for task in sorted({c["task"] for c in summary.get("cells", [])}):
        out += ["", f"### {task}: training-free methods beside the samplers"]
        for question, lines in training_free_answers(summary, task, labels=group_label).items():
            if lines:
                out += ["", f"{question}:", *(f"- {line}" for line in lines)]
    return "\n".join(out)


def headline_markdown(summary: dict) -> str:
    """The headline tables (ours, then the paper's reported rows) as markdown, for notes and reports."""
    from hybridviz.experiments.plan import plan_in
    from hybridviz.experiments.verdict import TRANSDUCTIVE_SECTION, transductive_verdicts, verdicts
    from hybridviz.paper import reported_headline
    from hybridviz.viz.style import SAMPLER_ORDER, group_label
    from hybridviz.viz.tables import MARK_LEGEND, headline

    def table(frame) -> list[str]:
        return _markdown_table(frame).split("\n")

    plan = plan_in(summary)
    out = [f"Statistics under the {plan.label} ({plan.name}; summary version {summary.get('version', 1)})."]
    for task in sorted({c["task"] for c in summary.get("cells", [])}):
        display, _ = headline(summary, task)
        lines = [f"- {v['text']}" for v in verdicts(summary, task, methods=SAMPLER_ORDER, labels=group_label)]
        out += ["", f"### {task} (hybridviz)", *table(display), "", "Verdict:",
                *(lines or ["- none yet: no two samplers have a run-level comparison (a trained method needs two "
                            "seeds, or the other side more than one run)"])]
        if any("+" in c["group"] for c in summary.get("cells", [])):
            out += ["", "Verdict over every inductive method, training-free ones included:",
                    *(f"- {v['text']}" for v in verdicts(summary, task, labels=group_label))]
        transductive = transductive_verdicts(summary, task, labels=group_label)
        if transductive:
            out += ["", f"{TRANSDUCTIVE_SECTION[0].upper()}{TRANSDUCTIVE_SECTION[1:]}:",
                    *(f"- {line}" for line in transductive)]
        reported = reported_headline(task)
        if len(reported):
            out += ["", f"### {task} (reported by the paper; not computed here)",
                    *table(reported.round(4))]
    return "\n".join(out + ["", MARK_LEGEND])
