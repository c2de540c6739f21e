"""Query-language x candidate-language heatmaps of the matrices in an evaluation's metrics.json."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def matrix_frame(report: dict, metric: str) -> pd.DataFrame:
    """The metric's language-pair matrix as a frame (rows: query language, columns: candidate language)."""
    m = report["matrices"][metric]
    return pd.DataFrame(m["values"], index=pd.Index(m["rows"], name="query language"),
                        columns=pd.Index(m["cols"], name="candidate language"), dtype=float)


def language_pair_heatmap(report: dict, metric: str) -> go.Figure:
    where = "in the multilingual pool" if metric.startswith("multi:") else "mono on the diagonal, cross off it"
    return frame_heatmap(matrix_frame(report, metric), metric,
                         f"{metric}: {report['task']} · {report['model']['label']} ({where})")


def frame_heatmap(frame: pd.DataFrame, metric: str, title: str, counts: pd.DataFrame | None = None) -> go.Figure:
    is_rank = "rank" in metric  # lower is better: reverse the scale so "good" keeps one colour
    text = frame.map(lambda v: "" if pd.isna(v) else (f"{v:.0f}" if is_rank else f"{v:.3f}"))
    extra = "" if counts is None else "<br>%{customdata} queries"
    fig = go.Figure(go.Heatmap(
        z=frame.values, x=list(frame.columns), y=list(frame.index), text=text.values, texttemplate="%{text}",
        colorscale="Viridis_r" if is_rank else "Viridis", colorbar={"title": metric.replace("multi: ", "")},
        customdata=None if counts is None else counts.values,
        hovertemplate="query %{y} → pool %{x}<br>" + metric + " %{z:.4f}" + extra + "<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="candidate language", yaxis_title="query language",
                      yaxis_autorange="reversed", height=120 + 40 * len(frame))
    return fig


# ------------------------------------------------------------------------------------ bundles (seeds, deltas)


def mean_matrix(results, metric: str) -> pd.DataFrame:
    """The metric's language-pair matrix averaged over the given models (the seeds of one sampler)."""
    frames = [matrix_frame(r.metrics, metric) for r in results if metric in r.metrics.get("matrices", {})]
    if not frames:
        return pd.DataFrame()
    return sum(frames) / len(frames)


def delta_heatmap(cells: dict[str, pd.DataFrame], label_a: str, label_b: str, title: str) -> go.Figure:
    """Diverging heatmap of b - a centred on 0; cells whose BH-adjusted p < .05 carry stars (run as the unit)."""
    delta, pvals, counts = cells["delta"], cells["p_adjusted"], cells["n"]
    marks = pvals.map(lambda p: "" if pd.isna(p) else "***" if p < 0.001 else "**" if p < 0.01
                      else "*" if p < 0.05 else "")
    text = delta.map(lambda v: "" if pd.isna(v) else f"{v:+.3f}") + marks
    limit = float(np.nanmax(np.abs(delta.values))) if np.isfinite(delta.values).any() else 1.0
    custom = np.dstack([pvals.values, counts.values])
    fig = go.Figure(go.Heatmap(
        z=delta.values, x=list(delta.columns), y=list(delta.index), text=text.values, texttemplate="%{text}",
        colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit, customdata=custom,
        colorbar={"title": f"Δ AP<br>{label_b} − {label_a}"},
        hovertemplate="query %{y} → pool %{x}<br>Δ AP %{z:+.4f}<br>p = %{customdata[0]:.4f} "
                      "(adjusted, BH over the map's cells; runs as the unit)<br>%{customdata[1]} queries"
                      "<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="candidate language", yaxis_title="query language",
                      yaxis_autorange="reversed", height=140 + 40 * len(delta))
    return fig
