"""Draw a report `Figure` with Plotly, for the interactive page."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import Figure, Panel, Trace

TEMPLATE = "plotly_white"


def _trace(t: Trace, panel: Panel) -> go.BaseTraceType:
    if t.mode == "heatmap":
        return go.Heatmap(z=t.z, x=t.x, y=t.y, zmin=0, zmax=t.zmax, colorscale="Viridis",
                          colorbar=dict(title=t.zlabel),
                          customdata=[[k] * len(t.x) for k in t.keys] if t.keys is not None else None, xgap=1, ygap=1,
                          hovertemplate=f"%{{y}}<br>%{{x}}: %{{z:{t.zformat}}} {t.zlabel}<extra></extra>")
    step = t.mode == "step"
    line = dict(color=t.color, dash="dash", width=1.5, shape="hv") if step else dict(color=t.color)
    marker = (dict(size=15, color="rgba(0,0,0,0)", line=dict(color=t.color, width=1.5)) if step else
              dict(size=t.size, symbol=t.symbol, color=t.color, line=dict(color="white", width=1)
                   if t.mode == "markers" else None))
    return go.Scatter(
        x=t.x, y=t.y, mode="lines+markers" if step else t.mode, name=t.name, legendgroup=t.group or t.name,
        showlegend=t.legend, line=line, marker=marker, offsetgroup=t.offset_group,
        error_y=dict(type="data", array=t.error, visible=True, thickness=1) if t.error else None,
        error_x=dict(type="data", array=t.xerror, visible=True, thickness=1) if t.xerror else None,
        customdata=np.array(t.keys, dtype=object) if t.keys is not None else None, text=t.hover,
        hovertemplate="%{text}<extra></extra>" if t.hover else None)


def render_plotly(fig: Figure) -> go.Figure:
    if fig.empty:
        out = go.Figure()
        out.add_annotation(text=fig.message, showarrow=False, font=dict(size=14, color="#777"), x=0.5, y=0.5,
                           xref="paper", yref="paper")
        out.update_xaxes(visible=False)
        out.update_yaxes(visible=False)
        return _finish(out, fig)
    rows = math.ceil(len(fig.panels) / fig.cols)
    many = len(fig.panels) > 1
    out = make_subplots(rows=rows, cols=fig.cols, shared_yaxes=fig.shared_y and many,
                        subplot_titles=[p.title for p in fig.panels] if any(p.title for p in fig.panels) else None,
                        horizontal_spacing=0.04 if many else None, vertical_spacing=0.14 if rows > 1 else None)
    for i, panel in enumerate(fig.panels):
        r, c = divmod(i, fig.cols)
        for t in panel.traces:
            out.add_trace(_trace(t, panel), row=r + 1, col=c + 1)
        for y, label in panel.hlines:
            out.add_hline(y=y, line=dict(color="#222222", dash="dot", width=1), annotation_text=label,
                          annotation_position="top left", row=r + 1, col=c + 1)
        axis = dict(row=r + 1, col=c + 1)
        out.update_xaxes(title_text=panel.xtitle or None, type="log" if panel.xlog else None, **axis)
        if panel.categories is not None:
            out.update_xaxes(type="category", categoryorder="array", categoryarray=panel.categories, **axis)
        out.update_yaxes(title_text=panel.ytitle or None, range=list(panel.yrange) if panel.yrange else None, **axis)
        if any(t.mode == "heatmap" for t in panel.traces):
            out.update_yaxes(autorange="reversed", showticklabels=len(panel.traces[0].y) <= 60, **axis)
            out.update_xaxes(tickangle=-60, tickfont=dict(size=9), **axis)
    return _finish(out, fig, scattermode="group" if any(t.offset_group for p in fig.panels for t in p.traces)
                   else None)


def _finish(out: go.Figure, fig: Figure, **layout) -> go.Figure:
    out.update_layout(template=TEMPLATE, height=fig.height, margin=dict(l=60, r=20, t=50, b=50),
                      title=fig.title or None, legend=dict(title_text=fig.legend_title or None),
                      **{k: v for k, v in layout.items() if v is not None})
    return out
