"""The interactive figures of the HTML report (Plotly), built from `load_runs()`'s table.

Every point carries its trial's key in `customdata[0]`, so the page can show that
trial's channels when a point is clicked.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .data import BASELINE
from .pareto import pareto_mask

TEMPLATE = "plotly_white"
BASELINE_COLOR = "#222222"
_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "pentagon", "hexagon",
            "star-square", "triangle-left", "triangle-right"]

COSTS = {  # column -> (axis title, scale, hover format)
    "params": ("parameters", 1.0, ",.0f"),
    "macs": ("MACs (millions)", 1e-6, ",.2f"),
    "latency_ms": ("latency (ms, batch 1, CPU)", 1.0, ".3f"),
    "size_bytes": ("size (KB)", 1 / 1024, ",.0f"),
}


def algorithm_colors(algorithms) -> dict[str, str]:
    palette = qualitative.D3 + qualitative.Set2
    names = sorted(a for a in set(algorithms) if a != BASELINE)
    colors = {a: palette[i % len(palette)] for i, a in enumerate(names)}
    colors[BASELINE] = BASELINE_COLOR
    return colors


def series_colors(series) -> dict[str, str]:
    palette = qualitative.Plotly + qualitative.Dark24
    return {s: palette[i % len(palette)] for i, s in enumerate(sorted(set(series)))}


def natural_key(text: str):
    """'features.2' before 'features.10'."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _rate_order(df: pd.DataFrame) -> list[str]:
    kinds = {"channels": 0, "params": 1, "macs": 2}
    pairs = df[df["algorithm"] != BASELINE][["target_kind", "rate", "rate_label"]].drop_duplicates()
    pairs = sorted(pairs.itertuples(), key=lambda r: (kinds.get(r.target_kind, 9), r.rate))
    return list(dict.fromkeys(p.rate_label for p in pairs))


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _finish(fig: go.Figure, height: int, **layout) -> go.Figure:
    fig.update_layout(template=TEMPLATE, height=height, margin=dict(l=60, r=20, t=50, b=50),
                      legend=dict(title_text=layout.pop("legend_title", None)), **layout)
    return fig


def _empty(message: str, height: int = 160) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font=dict(size=14, color="#777"), x=0.5, y=0.5,
                       xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _finish(fig, height)


def metric_vs_rate(df: pd.DataFrame, metric: str, ytitle: str, title: str, scale: float = 100.0) -> go.Figure:
    """A panel per algorithm, a line per series (model, or run · model) through the
    mean over seeds (bars: one standard deviation), starting at its baseline (rate 0).
    Global-target trials (params=/macs=) are left out: their x is another quantity."""
    done = df[(df["status"] == "done") & df[metric].notna()]
    pruned = done[(done["algorithm"] != BASELINE) & (done["target_kind"] == "channels")]
    algorithms = sorted(pruned["algorithm"].unique())
    if done.empty:
        return _empty("no finished trials yet")
    if not algorithms:
        algorithms = [BASELINE]
    rows, cols = _grid(len(algorithms), 4)
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes=True, shared_xaxes=True,
                        subplot_titles=["baseline only" if a == BASELINE else a for a in algorithms],
                        horizontal_spacing=0.03, vertical_spacing=0.12)
    colors = series_colors(done["series"])
    for i, algo in enumerate(algorithms):
        r, c = divmod(i, cols)
        for s in sorted(done["series"].unique()):
            base = done[(done["series"] == s) & (done["algorithm"] == BASELINE)]
            rows_ = pruned[(pruned["series"] == s) & (pruned["algorithm"] == algo)]
            pts = pd.concat([base.assign(rate=0.0), rows_])
            if pts.empty:
                continue
            g = pts.groupby("rate")
            mean, std, n = g[metric].mean() * scale, g[metric].std().fillna(0) * scale, g[metric].size()
            keys = g["key"].first()
            multi = bool((n > 1).any())
            fig.add_trace(go.Scatter(
                x=mean.index, y=mean.values, mode="lines+markers", name=s, legendgroup=s, showlegend=i == 0,
                line=dict(color=colors[s]), marker=dict(size=7),
                error_y=dict(type="data", array=std.values, visible=multi, thickness=1),
                customdata=np.stack([keys.values, n.values], axis=1),
                hovertemplate=f"{s}<br>{algo} rate %{{x:g}}<br>{ytitle}: %{{y:.2f}}"
                              + (" (mean of %{customdata[1]})" if multi else "") + "<extra></extra>"),
                row=r + 1, col=c + 1)
    fig.update_xaxes(title_text="pruning rate", row=rows, range=[-0.04, 1.0] if not pruned.empty else None)
    for r in range(rows):
        fig.update_yaxes(title_text=ytitle, row=r + 1, col=1)
    return _finish(fig, 300 * rows + 90, title=title, legend_title="model")


def tradeoff(df: pd.DataFrame, cost: str) -> go.Figure:
    """Accuracy against one cost: every finished trial a point (colour: algorithm,
    symbol: model), the baselines as stars, the Pareto front of each run as a step."""
    label, scale, fmt = COSTS[cost]
    d = df[(df["status"] == "done") & df[cost].notna() & df["accuracy"].notna()]
    if d.empty:
        what = "latency was not measured in this run" if cost == "latency_ms" and \
            (df["status"] == "done").any() else "no finished trials yet"
        return _empty(what)
    colors = algorithm_colors(d["algorithm"])
    symbols = {s: _SYMBOLS[i % len(_SYMBOLS)] for i, s in enumerate(sorted(d["series"].unique()))}
    multi_series = len(symbols) > 1
    fig = go.Figure()
    hover = ("%{text}<br>accuracy %{y:.2f}%<br>" + label + " %{x:" + fmt + "}"
             "<br>Δ vs baseline %{customdata[1]:+.2f} pt<extra></extra>")
    for run, g in d.groupby("run", sort=False):
        front = g[pareto_mask(g[cost].to_numpy(), g["accuracy"].to_numpy())].sort_values(cost)
        name = "Pareto front" + (f" · {run}" if d["run"].nunique() > 1 else "")
        if len(front):
            fig.add_trace(go.Scatter(
                x=front[cost] * scale, y=100 * front["accuracy"], mode="lines+markers", name=name,
                line=dict(color="rgba(80,80,80,0.8)", dash="dash", width=1.5, shape="hv"),
                marker=dict(size=15, color="rgba(0,0,0,0)", line=dict(color="rgba(80,80,80,0.9)", width=1.5)),
                text=front["name"], customdata=np.stack([front["key"], -100 * front["accuracy_drop"]], axis=1),
                hovertemplate="Pareto front<br>" + hover))
    groups = sorted(d.groupby(["algorithm", "series"]), key=lambda kv: (kv[0][0] == BASELINE, kv[0]))
    for (algo, s), g in groups:   # the baselines last in the legend
        base = algo == BASELINE
        fig.add_trace(go.Scatter(
            x=g[cost] * scale, y=100 * g["accuracy"], mode="markers",
            name=(f"baseline · {s}" if multi_series else "baseline (unpruned)") if base else
            (f"{algo} · {s}" if multi_series else algo),
            legendgroup="baseline" if base else algo,
            marker=dict(size=17 if base else 9, symbol="star" if base else symbols[s], color=colors[algo],
                        line=dict(color="white", width=1)),
            text=g["name"], customdata=np.stack([g["key"], -100 * g["accuracy_drop"].fillna(0)], axis=1),
            hovertemplate=hover))
    lo, hi = (d[cost] * scale).min(), (d[cost] * scale).max()
    fig.update_xaxes(title_text=label, type="log" if lo > 0 and hi / lo > 20 else "linear")
    fig.update_yaxes(title_text="top-1 accuracy (%)")
    return _finish(fig, 430, title=f"Accuracy vs {label.split(' (')[0]}", legend_title="algorithm")


def algorithms_at_rate(df: pd.DataFrame) -> go.Figure:
    """A panel per series: for every rate the accuracy of each algorithm side by side
    (mean over seeds, bars: standard deviation, small dots: the seeds), the
    baseline as a dashed line."""
    done = df[(df["status"] == "done") & df["accuracy"].notna()]
    pruned = done[done["algorithm"] != BASELINE]
    if pruned.empty:
        return _empty("no finished pruned trials yet")
    series = sorted(pruned["series"].unique())
    rows, cols = _grid(len(series), 3)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=series, horizontal_spacing=0.06,
                        vertical_spacing=0.16)
    colors = algorithm_colors(pruned["algorithm"])
    order = _rate_order(pruned)
    multi_seed = pruned.groupby(["series", "algorithm", "rate_label"]).size().max() > 1
    for i, s in enumerate(series):
        r, c = divmod(i, cols)
        d = pruned[pruned["series"] == s]
        for algo in sorted(d["algorithm"].unique()):
            g = d[d["algorithm"] == algo].groupby("rate_label")
            stats = pd.DataFrame({"mean": g["accuracy"].mean() * 100, "std": g["accuracy"].std().fillna(0) * 100,
                                  "n": g.size(), "key": g["key"].first()})
            stats = stats.reindex([x for x in order if x in stats.index])
            fig.add_trace(go.Scatter(
                x=stats.index, y=stats["mean"], mode="markers", name=algo, legendgroup=algo, showlegend=i == 0,
                offsetgroup=algo, marker=dict(size=11, color=colors[algo], symbol="diamond" if multi_seed else "circle"),
                error_y=dict(type="data", array=stats["std"], visible=bool(multi_seed), thickness=1.5, width=5),
                customdata=np.stack([stats["key"], stats["n"], stats["std"]], axis=1),
                hovertemplate=f"{s}<br>{algo} at %{{x}}<br>accuracy %{{y:.2f}}%"
                              + (" ± %{customdata[2]:.2f} (%{customdata[1]} seeds)" if multi_seed else "")
                              + "<extra></extra>"), row=r + 1, col=c + 1)
            if multi_seed:
                pts = d[d["algorithm"] == algo]
                fig.add_trace(go.Scatter(
                    x=pts["rate_label"], y=100 * pts["accuracy"], mode="markers", name=f"{algo} seeds",
                    legendgroup=algo, showlegend=False, offsetgroup=algo,
                    marker=dict(size=5, color=colors[algo], opacity=0.45),
                    customdata=np.stack([pts["key"], pts["seed"]], axis=1),
                    hovertemplate=f"{algo} at %{{x}} seed %{{customdata[1]}}: %{{y:.2f}}%<extra></extra>"),
                    row=r + 1, col=c + 1)
        base = done[(done["series"] == s) & (done["algorithm"] == BASELINE)]
        if not base.empty:
            fig.add_hline(y=100 * base["accuracy"].mean(), line=dict(color=BASELINE_COLOR, dash="dot", width=1),
                          annotation_text="baseline", annotation_position="top left", row=r + 1, col=c + 1)
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=order, row=r + 1, col=c + 1)
    fig.update_xaxes(title_text="pruning rate")
    # the shared y range: every point, spread and baseline, with a margin (shapes do not autoscale well)
    stats = pruned.groupby(["series", "algorithm", "rate_label"])["accuracy"].agg(["mean", "std"]).fillna(0)
    ys = list(100 * pruned["accuracy"]) + list(100 * (stats["mean"] - stats["std"])) + \
        list(100 * (stats["mean"] + stats["std"])) + list(100 * done[done["algorithm"] == BASELINE]["accuracy"])
    lo, hi = min(ys), max(ys)
    pad = max(0.5, 0.08 * (hi - lo))
    fig.update_yaxes(range=[lo - pad, hi + 2 * pad], matches="y")
    for r in range(rows):
        fig.update_yaxes(title_text="accuracy (%)", row=r + 1, col=1)
    return _finish(fig, 330 * rows + 80, title="Algorithms at equal rate", legend_title="algorithm",
                   scattermode="group")


def layer_heatmap(df: pd.DataFrame, layers: dict, model: str) -> go.Figure:
    """Rows: the pruned trials of one model; columns: its layers; colour: the
    fraction of output channels kept."""
    d = df[(df["model"] == model) & df["key"].isin(layers.keys())].sort_values(["run", "algorithm", "target_kind",
                                                                                   "rate", "seed"])
    if d.empty:
        return _empty(f"{model}: no per-layer channels recorded")
    names = sorted({n for k in d["key"] for n in layers[k]}, key=natural_key)
    z, ytext = [], []
    for r in d.itertuples():
        lc = layers[r.key]
        z.append([lc[n][1] / lc[n][0] if n in lc and lc[n][0] else None for n in names])
        ytext.append(r.name)
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=ytext, zmin=0, zmax=1, colorscale="Viridis", colorbar=dict(title="kept"),
        customdata=[[k] * len(names) for k in d["key"]],
        hovertemplate="%{y}<br>%{x}: %{z:.0%} of channels kept<extra></extra>", xgap=1, ygap=1))
    many = len(ytext) > 60
    fig.update_yaxes(autorange="reversed", showticklabels=not many, title_text=f"{len(ytext)} trials" if many else None)
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=9))
    height = int(min(1400, max(260, 140 + (6 if many else 18) * len(ytext))))
    return _finish(fig, height, title=f"{model}: fraction of channels kept per layer")
