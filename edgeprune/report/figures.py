"""The static figures, as PNG and SVG: accuracy vs pruning rate (a line per model,
a panel per algorithm), parameter reduction vs pruning rate, and accuracy vs
parameters / MACs / latency with the Pareto front (every trial a point).

They take the flat table of `store.to_dataframe()` or `report.data.load_runs()`;
with several seeds a line goes through the mean over seeds.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .pareto import pareto_mask  # noqa: E402

FORMATS = ("png", "svg")


def _done(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "status" not in df:
        return df
    return df[df["status"] == "done"]


def _series(df: pd.DataFrame) -> pd.DataFrame:
    return df if "series" in df else df.assign(series=df["model"])


def _panels(df: pd.DataFrame, metric: str, ylabel: str, title: str, with_baseline: bool):
    pruned = df[df["algorithm"] != "none"]
    algorithms = sorted(pruned["algorithm"].unique()) or ["none"]
    series = sorted(df["series"].unique())
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(series)}
    fig, axes = plt.subplots(1, len(algorithms), figsize=(4.2 * len(algorithms) + 1.5, 3.8),
                             sharey=True, squeeze=False)
    for ax, algo in zip(axes[0], algorithms):
        for s in series:
            rows = pruned[(pruned["algorithm"] == algo) & (pruned["series"] == s)]
            base = df[(df["algorithm"] == "none") & (df["series"] == s)]
            # global-target trials (params=/macs=) have another x axis: plot channel rates only
            rows = rows[rows["target_kind"] == "channels"].groupby("rate")[metric].mean().sort_index()
            xs, ys = list(rows.index), list(rows.values)
            if with_baseline and not base.empty:
                xs, ys = [0.0] + xs, [float(base[metric].mean())] + ys
            if xs:
                ax.plot(xs, ys, marker="o", ms=4, label=s, color=colors[s])
        ax.set_title(algo)
        ax.set_xlabel("pruning rate (fraction of channels removed per layer)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center right", frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.85 if handles else 1, 1))
    return fig


COSTS = [("params", "parameters", 1.0), ("macs", "MACs (millions)", 1e-6), ("latency_ms", "latency (ms)", 1.0)]


def _tradeoffs(df: pd.DataFrame):
    """Accuracy against each cost, a panel per cost, the front of each run dashed."""
    costs = [c for c in COSTS if c[0] in df and df[c[0]].notna().any()]
    algorithms = sorted(df["algorithm"].unique())
    colors = {a: ("black" if a == "none" else plt.cm.tab10(i % 10)) for i, a in enumerate(algorithms)}
    markers = dict(zip(sorted(df["series"].unique()), "os^DvP<>hX" * 10))
    fig, axes = plt.subplots(1, len(costs), figsize=(4.6 * len(costs) + 1.8, 4.0), sharey=True, squeeze=False)
    for ax, (col, label, scale) in zip(axes[0], costs):
        d = df[df[col].notna() & df["accuracy"].notna()]
        for (algo, s), g in sorted(d.groupby(["algorithm", "series"]), key=lambda kv: (kv[0][0] == "none", kv[0])):
            base = algo == "none"
            ax.scatter(g[col] * scale, 100 * g["accuracy"], s=90 if base else 22,
                       marker="*" if base else markers[s], color=colors[algo],
                       label=f"{s} baseline" if base else algo, zorder=3 if base else 2,
                       edgecolors="white" if base else "none", linewidths=0.5)
        for run, g in d.groupby("run") if "run" in d else [("", d)]:
            front = g[pareto_mask(g[col].to_numpy(), g["accuracy"].to_numpy())].sort_values(col)
            if len(front):
                ax.step(front[col] * scale, 100 * front["accuracy"], where="post", color="0.35",
                        ls="--", lw=1, zorder=1, label="Pareto front")
        if len(d) and d[col].max() > 20 * max(d[col].min(), 1e-12):
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 accuracy after fine-tuning (%)")
    seen, handles, labels = set(), [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen:
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="center right", frameon=False, fontsize=8)
    fig.suptitle("Accuracy vs cost (every trial; dashed: Pareto front)")
    fig.tight_layout(rect=(0, 0, 0.88 if handles else 1, 1))
    return fig


def write_figures(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write accuracy_vs_rate, param_reduction_vs_rate and accuracy_vs_cost as PNG
    and SVG; returns the files written (none when no trial is done)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = _done(df)
    if df.empty:
        return []
    df = _series(df)
    df = df.assign(accuracy_pct=100 * df["accuracy"], param_reduction_pct=100 * df["param_reduction"])
    specs = [("accuracy_vs_rate", "accuracy_pct", "top-1 accuracy after fine-tuning (%)",
              "Accuracy vs pruning rate"),
             ("param_reduction_vs_rate", "param_reduction_pct", "parameter reduction (%)",
              "Parameter reduction vs pruning rate")]
    figs = [(stem, _panels(df, metric, ylabel, title, with_baseline=True)) for stem, metric, ylabel, title in specs]
    if np.isfinite(df["accuracy"].to_numpy(dtype=float)).any():
        figs.append(("accuracy_vs_cost", _tradeoffs(df)))
    written = []
    for stem, fig in figs:
        for fmt in FORMATS:
            path = out_dir / f"{stem}.{fmt}"
            fig.savefig(path, dpi=130)
            written.append(path)
        plt.close(fig)
    return written
