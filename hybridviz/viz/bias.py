"""Language-bias figures: max rank distance per query language, same-language share, one query's ranks."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from hybridviz.results import ModelResult
from hybridviz.viz.style import TASK_LABELS, group_color, group_order, language_colors


def bias_frame(results: list[ModelResult]) -> pd.DataFrame:
    """One row per (model, query) of the multilingual setting: max rank distance and same-language share."""
    rows = []
    for r in results:
        for line in r.per_query_lines():
            rows.append({"group": r.group, "label": r.label, "seed": r.seed, "query_id": line["query_id"],
                         "query_lang": line["query_lang"], "max_rank_distance": line["max_rank_distance"],
                         "same_lang@10": line.get("same_lang@10"), "ap": line["ap"]})
    return pd.DataFrame(rows, columns=["group", "label", "seed", "query_id", "query_lang", "max_rank_distance",
                                       "same_lang@10", "ap"])


def rank_distance_boxes(frame: pd.DataFrame, task: str) -> go.Figure:
    order = group_order(set(frame["group"]))
    fig = px.box(frame, x="query_lang", y="max_rank_distance", color="group", points=False, log_y=True,
                 category_orders={"group": order, "query_lang": sorted(set(frame["query_lang"]))},
                 color_discrete_map={g: group_color(g) for g in order},
                 labels={"query_lang": "query language", "max_rank_distance": "max rank distance (log)",
                         "group": "sampler"})
    fig.update_layout(title=f"{TASK_LABELS.get(task, task)} · max − min rank of a query's parallel relevant "
                            "items in the pooled ranking (all seeds; lower is less biased)", height=460)
    return fig


def same_language_bars(frame: pd.DataFrame, task: str, k: int = 10) -> go.Figure:
    agg = frame.groupby(["group", "query_lang"])["same_lang@10"].mean().reset_index()
    order = group_order(set(agg["group"]))
    fig = px.bar(agg, x="query_lang", y="same_lang@10", color="group", barmode="group",
                 category_orders={"group": order}, color_discrete_map={g: group_color(g) for g in order},
                 labels={"query_lang": "query language", "same_lang@10": f"share of the top {k} in the query's "
                                                                          "language", "group": "sampler"})
    fig.update_layout(title=f"{TASK_LABELS.get(task, task)} · same-language share of the top {k} "
                            "(mean over queries and seeds)", height=420)
    return fig


def query_rank_frame(results: list[ModelResult], query_id: str) -> pd.DataFrame:
    """For one query, every model's ranks of its parallel relevant items (multilingual pool)."""
    rows = []
    for r in results:
        for line in r.per_query_lines():
            if line["query_id"] == query_id:
                rows += [{"group": r.group, "label": r.label, "candidate_id": rel["candidate_id"],
                          "lang": rel["lang"], "rank": rel["rank"]} for rel in line["relevant"]]
                break
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
