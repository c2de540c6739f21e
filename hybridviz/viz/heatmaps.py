"""Query-language x candidate-language heatmaps of the matrices in an evaluation's metrics.json."""

from __future__ import annotations

from pathlib import Path

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


def pair_values(folder) -> tuple[list[str], list[str], np.ndarray] | None:
    """(query ids, pool languages, AP[query, pool language]) from an evaluation folder's per_query_pairs.npz."""
    path = Path(folder) / "per_query_pairs.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        return [str(q) for q in z["query_ids"]], [str(x) for x in z["pool_langs"]], z["ap"].astype(np.float64)


def delta_cells(folders_a, folders_b, n_resamples: int = 2000) -> dict[str, pd.DataFrame]:
    """Per language pair: mean AP of b minus a (each the mean over its evaluation folders, i.e. seeds), paired
    randomisation p-value over queries, and the query count. {} when the folders lack per-pair files."""
    from hybridviz.experiments.stats import sign_flip_p

    def seed_mean(folders):
        loaded = [pair_values(f) for f in folders]
        loaded = [x for x in loaded if x is not None]
        if not loaded:
            return None
        ids, langs, _ = loaded[0]
        stack = [x[2] for x in loaded if x[0] == ids and x[1] == langs]
        return ids, langs, np.mean(stack, axis=0)

    a, b = seed_mean(folders_a), seed_mean(folders_b)
    if a is None or b is None or a[0] != b[0] or a[1] != b[1]:
        return {}
    ids, langs, values_a = a
    values_b = b[2]
    qlang = np.array([q.split(":")[0] for q in ids])
    delta = pd.DataFrame(np.nan, index=langs, columns=langs)
    pvals, counts = delta.copy(), delta.copy()
    for x in langs:
        rows = qlang == x
        for j, y in enumerate(langs):
            d = values_b[rows, j] - values_a[rows, j]
            d = d[~np.isnan(d)]
            if d.size < 2:
                continue
            delta.loc[x, y] = d.mean()
            counts.loc[x, y] = d.size
            pvals.loc[x, y] = sign_flip_p(d, n_resamples=n_resamples) if np.any(d) else 1.0
    for frame in (delta, pvals, counts):
        frame.index.name, frame.columns.name = "query language", "candidate language"
    return {"delta": delta, "p": pvals, "n": counts}


def delta_heatmap(cells: dict[str, pd.DataFrame], label_a: str, label_b: str, title: str) -> go.Figure:
    """Diverging heatmap of b - a centred on 0; cells with p < 0.05 carry a star."""
    delta, pvals, counts = cells["delta"], cells["p"], cells["n"]
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
                      "(paired randomisation)<br>%{customdata[1]} queries<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="candidate language", yaxis_title="query language",
                      yaxis_autorange="reversed", height=140 + 40 * len(delta))
    return fig
