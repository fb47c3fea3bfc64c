"""The report's figures, each defined once, as data: a `Figure` of panels of
traces, built from the trials table (edgeprune.results). Two renderers draw the
same definitions: `render_static` (matplotlib: PNG/SVG files) and `render_plotly`
(the interactive HTML report).

Every point carries its trial's key, so the page can show that trial when a
point is clicked.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from ..config import BASELINE
from ..pareto import pareto_mask

BASELINE_COLOR = "#222222"
FRONT_COLOR = "rgba(80,80,80,0.85)"
# Plotly's and D3's qualitative palettes (as plotly.colors.qualitative lists them)
SERIES_PALETTE = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
                  "#FF97FF", "#FECB52"]
ALGORITHM_PALETTE = ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F",
                     "#BCBD22", "#17BECF"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "pentagon", "hexagon",
           "star-square", "triangle-left", "triangle-right"]

COSTS = {  # column -> (axis title, scale, hover format)
    "params": ("parameters", 1.0, ",.0f"),
    "macs": ("MACs (millions)", 1e-6, ",.2f"),
    "latency_ms": ("latency (ms, first latency backend)", 1.0, ".3f"),
    "size_bytes": ("size (kB)", 1e-3, ",.0f"),
}


@dataclass
class Trace:
    x: list
    y: list
    name: str = ""
    mode: str = "markers"            # markers | lines+markers | step (a Pareto front) | heatmap
    color: Optional[str] = None
    symbol: str = "circle"
    size: float = 9
    error: Optional[list] = None     # ± per point (standard deviation over seeds)
    xerror: Optional[list] = None    # ± per point along x (a latency's 95 % confidence interval)
    keys: Optional[list] = None      # trial keys, for clicks
    hover: Optional[list] = None     # one text per point
    group: Optional[str] = None      # legend group
    legend: bool = True
    offset_group: Optional[str] = None
    z: Optional[list] = None         # heatmap values (rows of y x columns of x)
    zlabel: str = "kept"             # heatmap: what the colour is, its upper end (None: the data's) and format
    zmax: Optional[float] = 1.0
    zformat: str = ".0%"


@dataclass
class Panel:
    traces: list[Trace] = field(default_factory=list)
    title: str = ""
    xtitle: str = ""
    ytitle: str = ""
    xlog: bool = False
    categories: Optional[list] = None                # a categorical x axis, in this order
    hlines: list[tuple[float, str]] = field(default_factory=list)
    yrange: Optional[tuple[float, float]] = None


@dataclass
class Figure:
    id: str
    title: str
    panels: list[Panel]
    cols: int = 1
    legend_title: str = ""
    message: str = ""                # shown instead of the panels when there is nothing to draw
    height: int = 430
    shared_y: bool = True

    @property
    def empty(self) -> bool:
        return bool(self.message)


def empty(fig_id: str, message: str) -> Figure:
    return Figure(fig_id, "", [], message=message, height=160)


def palette(names, colors: list[str], fixed: Optional[dict] = None) -> dict[str, str]:
    out = {n: colors[i % len(colors)] for i, n in enumerate(sorted(set(names) - set(fixed or {})))}
    return {**out, **(fixed or {})}


def algorithm_colors(algorithms) -> dict[str, str]:
    return palette(algorithms, ALGORITHM_PALETTE, {BASELINE: BASELINE_COLOR})


def natural_key(text: str):
    """'features.2' before 'features.10'."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def rate_order(df: pd.DataFrame) -> list[str]:
    kinds = {"channels": 0, "params": 1, "macs": 2}
    pairs = df[df["algorithm"] != BASELINE][["target_kind", "rate", "rate_label"]].drop_duplicates()
    pairs = sorted(pairs.itertuples(), key=lambda r: (kinds.get(r.target_kind, 9), r.rate))
    return list(dict.fromkeys(p.rate_label for p in pairs))


def _done(df: pd.DataFrame, *cols: str, screened: bool = False) -> pd.DataFrame:
    """Finished trials with the columns given; `screened`: leave refinements out
    (their x would repeat their source's)."""
    d = df[df["status"] == "done"]
    if screened and "stage" in d:
        d = d[~d["stage"].isin(["refine", "rung"])]     # a search's rungs: drawn in its own figure
    for c in cols:
        d = d[d[c].notna()]
    return d


# -- the figures ---------------------------------------------------------------------------------------------
def metric_vs_rate(df: pd.DataFrame, metric: str, ytitle: str, title: str, fig_id: str,
                   scale: float = 100.0) -> Figure:
    """A panel per algorithm, a line per series (model, or run · model) through the
    mean over seeds (bars: one standard deviation), starting at its baseline (rate 0).
    Global-target trials (params=/macs=) are left out: their x is another quantity."""
    done = _done(df, metric, screened=True)
    if done.empty:
        return empty(fig_id, "no finished trials yet")
    pruned = done[(done["algorithm"] != BASELINE) & (done["target_kind"] == "channels")]
    algorithms = sorted(pruned["algorithm"].unique()) or [BASELINE]
    colors = palette(done["series"], SERIES_PALETTE)
    panels = []
    for i, algo in enumerate(algorithms):
        panel = Panel(title="baseline only" if algo == BASELINE else algo, xtitle="pruning rate",
                      ytitle=ytitle if i == 0 else "")
        for s in sorted(done["series"].unique()):
            base = done[(done["series"] == s) & (done["algorithm"] == BASELINE)]
            rows = pruned[(pruned["series"] == s) & (pruned["algorithm"] == algo)]
            pts = pd.concat([base.assign(rate=0.0), rows])
            if pts.empty:
                continue
            g = pts.groupby("rate")
            mean, std, n = g[metric].mean() * scale, g[metric].std().fillna(0) * scale, g[metric].size()
            multi = bool((n > 1).any())
            hover = [f"{s}<br>{algo} rate {x:g}<br>{ytitle}: {y:.2f}" + (f" (mean of {k})" if multi else "")
                     for x, y, k in zip(mean.index, mean.values, n.values)]
            panel.traces.append(Trace(list(mean.index), list(mean.values), s, "lines+markers", colors[s], size=7,
                                      error=list(std.values) if multi else None, keys=list(g["key"].first().values),
                                      hover=hover, group=s, legend=i == 0))
        panels.append(panel)
    return Figure(fig_id, title, panels, cols=min(4, len(panels)), legend_title="model",
                  height=300 * math.ceil(len(panels) / 4) + 90)


def tradeoff(df: pd.DataFrame, cost: str, fig_id: str) -> Figure:
    """Accuracy against one cost: every finished trial a point (colour: algorithm,
    symbol: model), the baselines as stars, the Pareto front of each run as a step."""
    label, scale, fmt = COSTS[cost]
    d = _done(df, cost, "accuracy")
    if d.empty:
        latency_missing = cost == "latency_ms" and (df["status"] == "done").any()
        return empty(fig_id, "latency was not measured in this run" if latency_missing else "no finished trials yet")
    colors = algorithm_colors(d["algorithm"])
    symbols = {s: SYMBOLS[i % len(SYMBOLS)] for i, s in enumerate(sorted(d["series"].unique()))}
    multi_series, multi_run = len(symbols) > 1, d["run"].nunique() > 1
    panel = Panel(xtitle=label, ytitle="top-1 accuracy (%)")

    def hover(g):
        return [f"{n}<br>accuracy {100 * a:.2f}%<br>{label} {format(c * scale, fmt)}<br>Δ vs baseline "
                f"{-100 * (0 if math.isnan(dr) else dr):+.2f} pt"
                for n, a, c, dr in zip(g["name"], g["accuracy"], g[cost], g["accuracy_drop"])]

    for run, g in d.groupby("run", sort=False):
        front = g[pareto_mask(g[cost].to_numpy(), g["accuracy"].to_numpy())].sort_values(cost)
        if len(front):
            panel.traces.append(Trace(list(front[cost] * scale), list(100 * front["accuracy"]),
                                      "Pareto front" + (f" · {run}" if multi_run else ""), "step", FRONT_COLOR,
                                      keys=list(front["key"]), hover=hover(front)))
    d = d.assign(refined=d["stage"].isin(["refine", "rung"]) if "stage" in d else False)
    groups = sorted(d.groupby(["algorithm", "series", "refined"]), key=lambda kv: (kv[0][0] == BASELINE, kv[0]))
    for (algo, s, refined), g in groups:
        base = algo == BASELINE      # the baselines last in the legend
        name = ((f"baseline · {s}" if multi_series else "baseline (unpruned)") if base else
                (f"{algo} · {s}" if multi_series else algo)) + (" refined" if refined else "")
        symbol = "star" if base else ("diamond-open" if refined else symbols[s])   # refined: screened points' sequel
        xerror = None
        if cost == "latency_ms" and "latency_ci_rel" in g and g["latency_ci_rel"].notna().any():
            xerror = list((g["latency_ms"] * g["latency_ci_rel"]).fillna(0) * scale)   # the median's 95 % CI
        panel.traces.append(Trace(list(g[cost] * scale), list(100 * g["accuracy"]), name, "markers", colors[algo],
                                  symbol, 17 if base else 11 if refined else 9, keys=list(g["key"]),
                                  hover=hover(g), group="baseline" if base else algo, xerror=xerror))
    lo, hi = (d[cost] * scale).min(), (d[cost] * scale).max()
    panel.xlog = bool(lo > 0 and hi / lo > 20)
    return Figure(fig_id, f"Accuracy vs {label.split(' (')[0]}", [panel], legend_title="algorithm")


def algorithms_at_rate(df: pd.DataFrame, fig_id: str) -> Figure:
    """A panel per series: for every rate the accuracy of each algorithm side by side
    (mean over seeds, bars: standard deviation, small dots: the seeds), the
    baseline as a dotted line."""
    done = _done(df, "accuracy", screened=True)
    pruned = done[done["algorithm"] != BASELINE]
    if pruned.empty:
        return empty(fig_id, "no finished pruned trials yet")
    colors = algorithm_colors(pruned["algorithm"])
    order = rate_order(pruned)
    multi_seed = pruned.groupby(["series", "algorithm", "rate_label"]).size().max() > 1
    stats_all = pruned.groupby(["series", "algorithm", "rate_label"])["accuracy"].agg(["mean", "std"]).fillna(0)
    ys = (list(100 * pruned["accuracy"]) + list(100 * (stats_all["mean"] - stats_all["std"]))
          + list(100 * (stats_all["mean"] + stats_all["std"])) + list(100 * done[done["algorithm"] == BASELINE]["accuracy"]))
    lo, hi = min(ys), max(ys)
    pad = max(0.5, 0.08 * (hi - lo))
    panels = []
    for i, s in enumerate(sorted(pruned["series"].unique())):
        d = pruned[pruned["series"] == s]
        panel = Panel(title=s, xtitle="pruning rate", ytitle="accuracy (%)" if i % 3 == 0 else "", categories=order,
                      yrange=(lo - pad, hi + 2 * pad))
        for algo in sorted(d["algorithm"].unique()):
            g = d[d["algorithm"] == algo].groupby("rate_label")
            st = pd.DataFrame({"mean": g["accuracy"].mean() * 100, "std": g["accuracy"].std().fillna(0) * 100,
                               "n": g.size(), "key": g["key"].first()})
            st = st.reindex([x for x in order if x in st.index])
            hover = [f"{s}<br>{algo} at {r}<br>accuracy {m:.2f}%" + (f" ± {sd:.2f} ({n} seeds)" if multi_seed else "")
                     for r, m, sd, n in zip(st.index, st["mean"], st["std"], st["n"])]
            panel.traces.append(Trace(list(st.index), list(st["mean"]), algo, "markers", colors[algo],
                                      "diamond" if multi_seed else "circle", 11,
                                      error=list(st["std"]) if multi_seed else None, keys=list(st["key"]),
                                      hover=hover, group=algo, legend=i == 0, offset_group=algo))
            if multi_seed:
                pts = d[d["algorithm"] == algo]
                panel.traces.append(Trace(list(pts["rate_label"]), list(100 * pts["accuracy"]), f"{algo} seeds",
                                          "markers", colors[algo], size=5, keys=list(pts["key"]),
                                          hover=[f"{algo} at {r} seed {sd}: {100 * a:.2f}%" for r, sd, a in
                                                 zip(pts["rate_label"], pts["seed"], pts["accuracy"])],
                                          group=algo, legend=False, offset_group=algo))
        base = done[(done["series"] == s) & (done["algorithm"] == BASELINE)]
        if not base.empty:
            panel.hlines.append((100 * base["accuracy"].mean(), "baseline"))
        panels.append(panel)
    return Figure(fig_id, "Algorithms at equal rate", panels, cols=min(3, len(panels)), legend_title="algorithm",
                  height=330 * math.ceil(len(panels) / 3) + 80)


def backend_labels(df: pd.DataFrame) -> list[str]:
    """The latency backends a run measured (from latency_<label>_ms columns)."""
    skip = ("p90", "ci_low", "ci_high", "iqr", "reference", "search", "reached", "target", "unpruned")
    return sorted(c[len("latency_"):-len("_ms")] for c in df.columns
                  if c.startswith("latency_") and c.endswith("_ms") and c != "latency_ms"
                  and not any(c.endswith(f"{k}_ms") for k in skip) and df[c].notna().any())


def runtimes(df: pd.DataFrame, fig_id: str) -> Figure:
    """A panel per series: each runtime's speed-up over the unpruned model against the
    MAC reduction (fp32 trials; the speed-up from the interleaved ratio where there is
    one, so machine drift cancels), and MAC speed-up as the dotted ideal."""
    labels = backend_labels(df)
    d = _done(df, "mac_reduction", screened=True)
    if "quantize" in d:
        d = d[d["quantize"].fillna("none") == "none"]
    if len(labels) < 2 or d.empty:
        return empty(fig_id, "measure.latency named one runtime: name two or more to compare them")
    colors = palette(labels, SERIES_PALETTE)
    panels = []
    for i, s in enumerate(sorted(d["series"].unique())):
        g = d[d["series"] == s].sort_values("mac_reduction")
        base = g[g["algorithm"] == BASELINE]
        panel = Panel(title=s, xtitle="MAC reduction (%)", ytitle="speed-up over unpruned (x)" if i % 3 == 0 else "")
        ideal = g[g["mac_reduction"] < 1]
        panel.traces.append(Trace(list(100 * ideal["mac_reduction"]), list(1 / (1 - ideal["mac_reduction"])),
                                  "MACs (ideal)", "lines", "#999999", size=4, group="ideal", legend=i == 0))
        for label in labels:
            relative = g.get(f"latency_{label}_relative")
            if relative is not None and relative.notna().all():
                speedup = 1 / relative
            elif not base.empty and base[f"latency_{label}_ms"].notna().any():
                speedup = base[f"latency_{label}_ms"].mean() / g[f"latency_{label}_ms"]
            else:
                continue
            ok = speedup.notna()
            panel.traces.append(Trace(list(100 * g["mac_reduction"][ok]), list(speedup[ok]), label, "markers",
                                      colors[label], size=9, keys=list(g["key"][ok]), group=label, legend=i == 0,
                                      hover=[f"{n}<br>{label}: x{v:.2f} (MACs x{1 / (1 - m):.2f})" for n, v, m in
                                             zip(g["name"][ok], speedup[ok], g["mac_reduction"][ok])]))
        panels.append(panel)
    return Figure(fig_id, "Speed-up per runtime", panels, cols=min(3, len(panels)), legend_title="runtime",
                  height=330 * math.ceil(len(panels) / 3) + 80)


def layer_heatmap(df: pd.DataFrame, layers: dict, model: str, fig_id: str) -> Figure:
    """Rows: the pruned trials of one model; columns: its layers; colour: the
    fraction of output channels kept."""
    d = df[(df["model"] == model) & df["key"].isin(layers.keys())].sort_values(
        ["run", "algorithm", "target_kind", "rate", "seed"])
    if d.empty:
        return empty(fig_id, f"{model}: no per-layer channels recorded")
    names = sorted({n for k in d["key"] for n in layers[k]}, key=natural_key)
    z = [[layers[k][n][1] / layers[k][n][0] if n in layers[k] and layers[k][n][0] else None for n in names]
         for k in d["key"]]
    trace = Trace(names, list(d["name"]), mode="heatmap", z=z, keys=list(d["key"]))
    height = int(min(1400, max(260, 140 + (6 if len(d) > 60 else 18) * len(d))))
    return Figure(fig_id, f"{model}: fraction of channels kept per layer", [Panel([trace])], height=height)


def static_figures(df: pd.DataFrame) -> dict[str, Figure]:
    """The figures written as PNG/SVG files: the same definitions the page draws."""
    figs = {
        "accuracy_vs_rate": metric_vs_rate(df, "accuracy", "top-1 accuracy after fine-tuning (%)",
                                           "Accuracy vs pruning rate", "accuracy_vs_rate"),
        "param_reduction_vs_rate": metric_vs_rate(df, "param_reduction", "parameter reduction (%)",
                                                  "Parameter reduction vs pruning rate", "param_reduction_vs_rate"),
    }
    costs = [tradeoff(df, c, c) for c in ("params", "macs", "latency_ms")]
    panels = [f.panels[0] for f in costs if not f.empty]
    if panels:
        figs["accuracy_vs_cost"] = Figure("accuracy_vs_cost", "Accuracy vs cost (every trial; dashed: Pareto front)",
                                          panels, cols=len(panels), legend_title="algorithm")
    return {k: f for k, f in figs.items() if not f.empty}


def finite(values) -> bool:
    return bool(np.isfinite(np.asarray(values, dtype=float)).any())
