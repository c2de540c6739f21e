"""The Overview's picture: the hybrid sampler's effect against X-X-mono and against X-Y per benchmark and setting,
in units of each comparison's equivalence margin, coloured by its verdict. It draws the records it is given
(experiments/effects.py computes them from a summary) and computes nothing."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hybridviz.viz.style import VERDICT_COLORS

COLUMNS = ["task", "setting", "metric", "comparator", "delta", "ci_low", "ci_high", "equivalence_margin",
           "verdict", "within_margin", "p_adjusted", "correction", "effect", "effect_low", "effect_high",
           "n_hybrid", "n_comparator"]
BENCHMARKS = {"xquad-r": "<b>XQuAD-R</b> (reference)", "mkqa-queries": "MKQA queries", "mkqa-answers": "MKQA answers",
              "mkqa-mteb": "MKQA · MTEB"}
CELLS = {("mono", "mAP"): "monolingual mAP", ("cross", "mAP"): "cross-lingual mAP",
         ("multi", "mAP"): "multilingual mAP",
         ("multi", "max_rank_distance"): "multilingual bias<br>(max rank distance)"}
COMPARATORS = {"x-x-mono": "hybrid vs X-X-mono", "x-y": "hybrid vs X-Y"}
VERDICT_LEGEND = {"better": "hybrid better (significant)", "equivalent": "equivalent within ±m (TOST)",
                  "undetermined": "undetermined", "not equivalent": "not equivalent (outside ±m, not significant)",
                  "worse": "hybrid worse (significant)"}


def effect_frame(effects: list[dict]) -> pd.DataFrame:
    """The records as drawn (and offered as CSV): rows in the picture's order, benchmarks in their fixed order
    within each cell; effects without a margin (nothing to draw on this axis) left out."""
    frame = pd.DataFrame(effects, columns=COLUMNS)
    frame = frame[frame["effect"].notna()].copy()
    cell_rank = {c: i for i, c in enumerate(CELLS)}
    task_rank = {t: i for i, t in enumerate(BENCHMARKS)}
    frame["_order"] = [(cell_rank.get((s, m), len(cell_rank)), task_rank.get(t, len(task_rank)))
                       for t, s, m in zip(frame["task"], frame["setting"], frame["metric"])]
    return frame.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def _digits(metric: str) -> int:
    return 1 if metric == "max_rank_distance" else 4


def _hover(row) -> str:
    d = _digits(row["metric"])
    small = "; detectable, yet within ±m by the TOST" if row["within_margin"] else ""
    cell = CELLS.get((row["setting"], row["metric"]), "").replace("<br>", " ")
    return (f"<b>{BENCHMARKS.get(row['task'], row['task'])} · {cell}</b><br>"
            f"{COMPARATORS.get(row['comparator'], row['comparator'])}: Δ = {row['delta']:+.{d}f} "
            f"(95 % CI {row['ci_low']:+.{d}f} to {row['ci_high']:+.{d}f}), "
            f"margin m = {row['equivalence_margin']:.{d}f}<br>"
            f"in margins: {row['effect']:+.2f} m ({row['effect_low']:+.2f} to {row['effect_high']:+.2f}), "
            f"positive = hybrid better<br>verdict: {row['verdict']}{small}; adjusted p = {row['p_adjusted']:.2g} "
            f"({row['correction']}); runs {row['n_hybrid']} + {row['n_comparator']}")


def _positions(rows: list[tuple]) -> tuple[dict, list[tuple[str, float, float]]]:
    """Row (setting, metric, task) -> its y (0, 1, ... from the top, a gap of one half between cells), and each
    cell's (name, first y, last y)."""
    y_of, groups, y = {}, [], 0.0
    for cell in dict.fromkeys(r[:2] for r in rows):
        first = y
        for r in [r for r in rows if r[:2] == cell]:
            y_of[r] = y
            y += 1
        groups.append((CELLS.get(cell, f"{cell[0]} {cell[1]}"), first, y - 1))
        y += 0.5
    return y_of, groups


def hybrid_effect_figure(frame: pd.DataFrame) -> go.Figure:
    """Two panels side by side (hybrid vs X-X-mono, hybrid vs X-Y) sharing one row per cell and benchmark: the
    effect in units of its margin m with its 95 % interval, oriented so that right = hybrid better; a shaded band
    at ±1 m (the equivalence zone) and a line at 0; the colour is the verdict, a hollow marker a detectable effect
    that the TOST also places within ±m. The cells are labelled on the left, each benchmark under it, XQuAD-R
    first. `frame`: `effect_frame`'s."""
    comparators = [c for c in COMPARATORS if c in set(frame["comparator"])] or list(COMPARATORS)
    rows = list(dict.fromkeys(zip(frame["setting"], frame["metric"], frame["task"])))
    y_of, groups = _positions(rows)
    fig = make_subplots(rows=1, cols=len(comparators), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[f"<b>{COMPARATORS[c]}</b>" for c in comparators])
    reach = 1.08 * max([1.5] + [abs(v) for v in pd.concat([frame["effect_low"], frame["effect_high"]]).dropna()])
    legend_entry = {"x": [None], "y": [None], "mode": "markers"}
    for verdict, name in VERDICT_LEGEND.items():  # the legend: filled markers, one per verdict present
        if verdict in set(frame["verdict"]):
            fig.add_trace(go.Scatter(**legend_entry, name=name, legendgroup=verdict,
                                     marker={"color": VERDICT_COLORS[verdict], "size": 11}), row=1, col=1)
    if frame["within_margin"].any():
        fig.add_trace(go.Scatter(**legend_entry, name="hollow: significant, yet within ±m by the TOST",
                                 marker={"color": "white", "size": 11, "line": {"color": "#555", "width": 2}}),
                      row=1, col=1)
    for col, comparator in enumerate(comparators, start=1):
        sub = frame[frame["comparator"] == comparator]
        for verdict, name in VERDICT_LEGEND.items():
            g = sub[sub["verdict"] == verdict]
            if g.empty:
                continue
            color = VERDICT_COLORS[verdict]
            fig.add_trace(go.Scatter(
                x=g["effect"], y=[y_of[r] for r in zip(g["setting"], g["metric"], g["task"])], mode="markers",
                name=name, legendgroup=verdict, showlegend=False,
                marker={"color": ["white" if w else color for w in g["within_margin"]], "size": 11,
                        "line": {"color": color, "width": 2}},
                error_x={"type": "data", "symmetric": False, "array": g["effect_high"] - g["effect"],
                         "arrayminus": g["effect"] - g["effect_low"], "color": color, "thickness": 2, "width": 5},
                hovertext=[_hover(r) for _, r in g.iterrows()], hoverinfo="text",
                customdata=g[["delta", "ci_low", "ci_high", "equivalence_margin"]].to_numpy()),
                row=1, col=col)
        fig.add_vrect(x0=-1, x1=1, fillcolor="#009E73", opacity=0.12, line_width=0, layer="below", row=1, col=col,
                      exclude_empty_subplots=False)
        fig.add_vline(x=0, line={"color": "#444", "width": 1}, row=1, col=col, exclude_empty_subplots=False)
        for _, first, last in groups[1:]:  # a rule between cells
            fig.add_hline(y=first - 0.75, line={"color": "#bbb", "width": 1}, row=1, col=col,
                          exclude_empty_subplots=False)
        fig.update_xaxes(range=[-reach, reach], dtick=1 if reach < 8 else None, zeroline=False, showgrid=True,
                         gridcolor="#eee", row=1, col=col,
                         title_text="hybrid − comparator, in margins m<br>← hybrid worse · hybrid better →")
    if comparators:
        fig.add_annotation(x=1, y=-0.5, xref="x", yref="y", text="±1 m: equivalence zone", showarrow=False,
                           yanchor="bottom", xanchor="left", font={"size": 11, "color": "#00795a"})
    ticks = sorted(y_of.items(), key=lambda kv: kv[1])
    fig.update_yaxes(tickvals=[y for _, y in ticks], ticktext=[BENCHMARKS.get(r[2], r[2]) for r, _ in ticks],
                     range=[(max(y_of.values()) if y_of else 0) + 0.6, -0.9], showgrid=False, zeroline=False)
    for name, first, last in groups:  # the cell's name left of its benchmarks
        fig.add_annotation(x=0, xref="paper", xanchor="right", xshift=-110, y=(first + last) / 2, yref="y",
                           text=f"<b>{name}</b>", showarrow=False, align="right", font={"size": 12})
    fig.update_layout(height=170 + 30 * max(len(rows), 1) + 15 * len(groups),
                      margin={"l": 250, "r": 10, "t": 70, "b": 10}, plot_bgcolor="white",
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.07, "xanchor": "left", "x": 0,
                              "title": {"text": "verdict:"}})
    return fig


EFFECT_CAPTION = (
    "**Reading the picture.** Each dot is hybrid's effect Δ = hybrid − comparator, the bar its 95 % interval "
    "(two-level bootstrap over runs and question clusters: *How to read the verdict and the marks*, below). "
    "Effects on different pools are not on one scale, so each is divided by its own equivalence margin m from the "
    "analysis plan (mAP: ±0.01; max rank distance: ±2 % of the base model's value on that benchmark, which grows "
    "with the pool) and turned so that right means hybrid is better (for rank distance, lower is better). The "
    "shaded band is ±1 m; the colour is the plan's verdict (marks p and TOST, adjusted in their family), not the "
    "eye's reading of the bar against the band. Hover a dot for Δ in the metric's own units; the CSV holds both.")
