"""The embedding map: UMAP panels of several models in one figure, coloured by language (one shared legend),
with one parallel set linked and each space's alignment figures in its panel title."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hybridviz.viz.style import language_colors


def embedding_maps(items: pd.DataFrame, panels: list[tuple[str, np.ndarray, dict]],
                   selected_group: str | None = None) -> go.Figure:
    """`panels`: (model label, 2-d coordinates, alignment figures) per model; one full-width row each."""
    colors = language_colors(set(items["lang"]))
    titles = [f"{label}<br><sup>language silhouette {fig.get('silhouette_language', float('nan')):.3f} "
              f"(lower = less clustered by language) · parallel-item rank "
              f"{fig.get('parallel_rank', float('nan')):.1f} (lower = closer)</sup>"
              for label, _, fig in panels]
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=titles, vertical_spacing=0.08)
    snippets = items["text"].str.slice(0, 90)
    for row, (label, coords, _) in enumerate(panels, start=1):
        for lang in sorted(colors):
            sel = (items["lang"] == lang).to_numpy()
            fig.add_trace(go.Scatter(
                x=coords[sel, 0], y=coords[sel, 1], mode="markers", name=lang, legendgroup=lang,
                showlegend=row == 1, marker={"size": 7, "color": colors[lang], "opacity": 0.8},
                customdata=np.stack([snippets[sel], items["group"][sel]], axis=1),
                hovertemplate=f"{lang} · %{{customdata[1]}}<br>%{{customdata[0]}}<extra>{label}</extra>"),
                row=row, col=1)
        if selected_group is not None:
            sel = (items["group"] == selected_group).to_numpy()
            if sel.any():
                # a closed path through the parallel set: its spread is the language gap of that item
                xs, ys = coords[sel, 0], coords[sel, 1]
                langs = list(items["lang"][sel])
                fig.add_trace(go.Scatter(
                    x=np.append(xs, xs[0]), y=np.append(ys, ys[0]), mode="lines+markers+text",
                    text=langs + [langs[0]], textposition="top center", line={"color": "black", "width": 1},
                    marker={"size": 12, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}},
                    name=f"parallel set {selected_group}", legendgroup="linked", showlegend=row == 1,
                    hoverinfo="skip"), row=row, col=1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=560 * len(panels), legend_title_text="language", margin={"t": 90},
                      legend={"itemsizing": "constant"})
    return fig
