"""Language-bias figures: max rank distance per query language, same-language share, one query's ranks."""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from hybridviz.results.store import ModelResult
from hybridviz.viz.style import TASK_LABELS, group_color, group_label, group_order, language_colors, legend_below


BIAS_COLUMNS = ["group", "label", "seed", "query_id", "query_lang", "max_rank_distance", "same_lang@10", "ap"]


def bias_frame(results: list[ModelResult]) -> pd.DataFrame:
    """One row per (model, query) of the multilingual setting: max rank distance and same-language share."""
    return pd.concat([per_query_views(r)[0] for r in results] or [pd.DataFrame(columns=BIAS_COLUMNS)],
                     ignore_index=True)


def per_query_views(r: ModelResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One pass over a result's per-query file: its rows of bias_frame, and its queries' relevant items with their
    ranks (query_id, candidate_id, lang, rank; categorical columns, ~2 MB for XQuAD-R), so a page parses each file
    once and finds any query's ranks by a mask. The compact encoding is read as columns (no dict per query or
    item: ~45 MB of Python objects per XQuAD-R evaluation otherwise, which the server's heap kept)."""
    compact = r.compact()
    if compact is not None:
        return _compact_views(r, compact)
    return _line_views(r, r.per_query_lines())


def _line_views(r: ModelResult, lines: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, relevant = [], {"query_id": [], "candidate_id": [], "lang": [], "rank": []}
    for line in lines:
        rows.append({"group": r.group, "label": r.label, "seed": r.seed, "query_id": line["query_id"],
                     "query_lang": line["query_lang"], "max_rank_distance": line["max_rank_distance"],
                     "same_lang@10": line.get("same_lang@10"), "ap": line["ap"]})
        for rel in line["relevant"]:
            relevant["query_id"].append(line["query_id"])
            relevant["candidate_id"].append(rel["candidate_id"])
            relevant["lang"].append(rel["lang"])
            relevant["rank"].append(rel["rank"])
    ranks = pd.DataFrame(relevant).astype({"query_id": "category", "candidate_id": "category", "lang": "category",
                                           "rank": "int64"})
    return pd.DataFrame(rows, columns=BIAS_COLUMNS), ranks


def _compact_views(r: ModelResult, compact) -> tuple[pd.DataFrame, pd.DataFrame]:
    figures = compact.record_figures
    n = len(compact.record_ids)
    rows = pd.DataFrame({"group": [r.group] * n, "label": [r.label] * n, "seed": [r.seed] * n,
                         "query_id": compact.record_ids, "query_lang": compact.record_langs,
                         "max_rank_distance": figures["max_rank_distance"],
                         "same_lang@10": figures.get("same_lang@10", [None] * n), "ap": figures["ap"]},
                        columns=BIAS_COLUMNS)
    cols = compact.relevant_columns()
    codes, names = pd.factorize(pd.Index(compact.record_ids), sort=True)

    def category(index, table, sort=True):
        cat = pd.Categorical.from_codes(index, pd.Index(table))
        return cat.reorder_categories(sorted(cat.categories)) if sort else cat

    ranks = pd.DataFrame({"query_id": pd.Categorical.from_codes(codes[cols["record"]], names),
                          "candidate_id": category(cols["candidate"], cols["candidates"]),
                          "lang": category(cols["lang"], cols["langs"]), "rank": cols["rank"]})
    return rows, ranks


def box_statistics(frame: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Per group: the quartiles (linear interpolation, plotly's default) and Tukey whiskers (the furthest values
    within 1.5 IQR of the box) that a box plot draws; handing plotly these instead of every value keeps the
    figure small (~250k queries x models on XQuAD-R: 3.3 MB of JSON and ~1 s per rerun otherwise)."""
    data = frame[[*by, value]].dropna()
    grouped = data.groupby(by, sort=True)[value]
    stats = grouped.quantile([0.25, 0.5, 0.75]).unstack()
    stats.columns = ["q1", "median", "q3"]
    stats["n"] = grouped.size()
    bounds = data.join(stats, on=by)
    iqr = bounds["q3"] - bounds["q1"]
    inside = data[(bounds[value] >= bounds["q1"] - 1.5 * iqr) & (bounds[value] <= bounds["q3"] + 1.5 * iqr)]
    fences = inside.groupby(by, sort=True)[value].agg(lowerfence="min", upperfence="max")
    out = stats.join(fences).reset_index()
    return out[[*by, "q1", "median", "q3", "lowerfence", "upperfence", "n"]]


def log_ticks(low: float, high: float) -> list[float]:
    """Ticks in plain numbers for a log axis over [low, high] (both > 0): 1, 2, 5, 10, 20, ... (1, 10, 100, ...
    over many decades; 1, 1.5, 2, 3, 5, 7, 10, ... within one), at least three in the range."""
    low, high = max(low, 1.0), max(high, low, 1.0)
    span = high / low
    mantissas = (1,) if span > 1e4 else (1, 2, 5) if span > 8 else (1, 1.5, 2, 3, 5, 7)
    ticks, decade = [], 1.0
    while decade <= high * 10:
        ticks += [decade * m for m in mantissas]
        decade *= 10
    inside = [t for t in ticks if low / 1.5 <= t <= high * 1.5]
    return inside or [1.0]


def rank_distance_boxes(stats: pd.DataFrame, task: str, pooled: bool = False) -> go.Figure:
    """Boxes of max rank distance per query language and sampler (pooled: one box per sampler over every query
    language); `stats`: box_statistics(bias frame, ["group", "query_lang"], "max_rank_distance")."""
    order = group_order(set(stats["group"]))
    fig = go.Figure()
    for g in order:
        sub = stats[stats["group"] == g]
        x = [group_label(g)] if pooled else list(sub["query_lang"])
        fig.add_trace(go.Box(name=group_label(g), x=x, q1=list(sub["q1"]), median=list(sub["median"]),
                             q3=list(sub["q3"]), lowerfence=list(sub["lowerfence"]),
                             upperfence=list(sub["upperfence"]), marker_color=group_color(g), boxpoints=False,
                             customdata=list(sub["n"]),
                             hovertemplate="%{x} · n = %{customdata}<extra>" + g + "</extra>"))
    positive = stats[["lowerfence", "upperfence"]].to_numpy()
    positive = positive[positive > 0]
    low, high = (float(positive.min()), float(positive.max())) if len(positive) else (1.0, 10.0)
    ticks = log_ticks(low, high)
    fig.update_layout(boxmode="overlay" if pooled else "group", xaxis_title="" if pooled else "query language",
                      yaxis={"type": "log", "title": "max rank distance (log scale)", "tickvals": ticks,
                             "ticktext": [f"{t:,g}" for t in ticks],
                             "range": [math.log10(min(low, ticks[0]) / 1.2), math.log10(max(high, ticks[-1]) * 1.2)]},
                      showlegend=not pooled, legend_title_text="sampler")
    fig.update_layout(title=f"{TASK_LABELS.get(task, task)} · max rank distance "
                            + ("per sampler, every query language together" if pooled else "per query language")
                            + "<br><sup>max − min rank of a query's parallel relevant items in the pooled ranking; "
                              "all seeds; lower is less biased</sup>", height=460)
    if not pooled:
        fig.update_xaxes(categoryorder="array", categoryarray=sorted(set(stats["query_lang"])))
        legend_below(fig, rows=-(-len(order) // 4))
    return fig


def same_language_bars(frame: pd.DataFrame, task: str, k: int = 10) -> go.Figure:
    agg = frame.groupby(["group", "query_lang"])["same_lang@10"].mean().reset_index()
    order = group_order(set(agg["group"]))
    fig = px.bar(agg, x="query_lang", y="same_lang@10", color="group", barmode="group",
                 category_orders={"group": order}, color_discrete_map={g: group_color(g) for g in order},
                 labels={"query_lang": "query language", "same_lang@10": f"share of the top {k} in the query's "
                                                                          "language", "group": "sampler"})
    fig.for_each_trace(lambda t: t.update(name=group_label(t.name)))
    fig.update_layout(title=f"{TASK_LABELS.get(task, task)} · same-language share of the top {k} "
                            "(mean over queries and seeds)", height=420)
    legend_below(fig, rows=-(-len(order) // 4))
    return fig


def query_rank_frame(results: list[ModelResult], query_id: str,
                     relevant: list[pd.DataFrame] | None = None) -> pd.DataFrame:
    """For one query, every model's ranks of its parallel relevant items (multilingual pool). `relevant`: each
    result's relevant-ranks frame (per_query_views), if already read."""
    relevant = relevant if relevant is not None else [per_query_views(r)[1] for r in results]
    rows = [{"group": r.group, "label": r.label, "candidate_id": str(c), "lang": str(lang), "rank": int(k)}
            for r, ranks in zip(results, relevant)
            for c, lang, k in ranks[ranks["query_id"] == query_id][["candidate_id", "lang", "rank"]].itertuples(
                index=False)]
    return pd.DataFrame(rows, columns=["group", "label", "candidate_id", "lang", "rank"])


def query_rank_plot(frame: pd.DataFrame, query_id: str, query_text: str = "") -> go.Figure:
    order = [lbl for g in group_order(set(frame["group"])) for lbl in sorted(set(frame[frame.group == g].label))]
    fig = px.strip(frame, x="rank", y="label", color="lang", log_x=True, hover_data=["candidate_id", "group"],
                   category_orders={"label": order}, color_discrete_map=language_colors(set(frame["lang"])),
                   labels={"rank": "rank in the multilingual pool (log)", "label": "model", "lang": "language"})
    fig.update_traces(marker={"size": 11, "line": {"width": 1, "color": "white"}})
    title = f"Ranks of the parallel relevant items of {query_id}"
    if query_text:
        title += f"<br><sup>{query_text[:140]}</sup>"
    fig.update_layout(title=title, height=160 + 34 * len(order))
    return fig
