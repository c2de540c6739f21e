"""Query-language x candidate-language heatmaps of the matrices in an evaluation's metrics.json."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def matrix_frame(report: dict, metric: str) -> pd.DataFrame:
    """The metric's language-pair matrix as a frame (rows: query language, columns: candidate language)."""
    m = report["matrices"][metric]
    return pd.DataFrame(m["values"], index=pd.Index(m["rows"], name="query language"),
                        columns=pd.Index(m["cols"], name="candidate language"), dtype=float)


def language_pair_heatmap(report: dict, metric: str) -> go.Figure:
    frame = matrix_frame(report, metric)
    is_rank = "rank" in metric  # lower is better: reverse the scale so "good" keeps one colour
    text = frame.map(lambda v: "" if pd.isna(v) else (f"{v:.0f}" if is_rank else f"{v:.3f}"))
    where = "in the multilingual pool" if metric.startswith("multi:") else "mono on the diagonal, cross off it"
    fig = go.Figure(go.Heatmap(
        z=frame.values, x=list(frame.columns), y=list(frame.index), text=text.values, texttemplate="%{text}",
        colorscale="Viridis_r" if is_rank else "Viridis", colorbar={"title": metric.replace("multi: ", "")},
        hovertemplate="query %{y} → pool %{x}<br>" + metric + " %{z:.4f}<extra></extra>",
    ))
    fig.update_layout(
        title=f"{metric}: {report['task']} · {report['model']['label']} ({where})",
        xaxis_title="candidate language", yaxis_title="query language", yaxis_autorange="reversed",
        height=120 + 40 * len(frame),
    )
    return fig
