"""The embedding map: UMAP scatter coloured by language, with one parallel set linked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from hybridviz.viz.style import language_colors


def embedding_scatter(items: pd.DataFrame, coords: np.ndarray, title: str, selected_group: str | None = None
                      ) -> go.Figure:
    frame = items.assign(x=coords[:, 0], y=coords[:, 1], snippet=items["text"].str.slice(0, 90))
    fig = px.scatter(frame, x="x", y="y", color="lang", hover_data={"snippet": True, "group": True, "x": False,
                                                                     "y": False},
                     color_discrete_map=language_colors(set(frame["lang"])), opacity=0.75)
    fig.update_traces(marker={"size": 6})
    if selected_group is not None:
        sel = frame[frame["group"] == selected_group]
        if len(sel):
            # a closed path through the parallel set: its spread is the language gap of that item
            path = pd.concat([sel, sel.iloc[:1]])
            fig.add_trace(go.Scatter(x=path["x"], y=path["y"], mode="lines+markers+text", text=path["lang"],
                                     textposition="top center", line={"color": "black", "width": 1},
                                     marker={"size": 12, "color": "rgba(0,0,0,0)",
                                             "line": {"width": 2, "color": "black"}},
                                     name=f"parallel set {selected_group}", hoverinfo="skip"))
    fig.update_layout(title=title, height=520, xaxis={"visible": False}, yaxis={"visible": False},
                      legend_title_text="language")
    return fig
