"""The seed's two figures, as PNG and SVG: accuracy vs pruning rate (a line per
model, a panel per algorithm) and parameter reduction vs pruning rate."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

FORMATS = ("png", "svg")


def _done(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "status" not in df:
        return df
    return df[df["status"] == "done"]


def _panels(df: pd.DataFrame, metric: str, ylabel: str, title: str, with_baseline: bool):
    pruned = df[df["algorithm"] != "none"]
    algorithms = sorted(pruned["algorithm"].unique()) or ["none"]
    models = sorted(df["model"].unique())
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    fig, axes = plt.subplots(1, len(algorithms), figsize=(4.2 * len(algorithms) + 1.5, 3.8),
                             sharey=True, squeeze=False)
    for ax, algo in zip(axes[0], algorithms):
        for model in models:
            rows = pruned[(pruned["algorithm"] == algo) & (pruned["model"] == model)]
            base = df[(df["algorithm"] == "none") & (df["model"] == model)]
            # global-target trials (params=/macs=) have another x axis: plot channel rates only
            rows = rows[rows["target_kind"] == "channels"].sort_values("rate")
            xs, ys = list(rows["rate"]), list(rows[metric])
            if with_baseline and not base.empty:
                xs, ys = [0.0] + xs, [float(base[metric].iloc[0])] + ys
            if xs:
                ax.plot(xs, ys, marker="o", ms=4, label=model, color=colors[model])
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


def write_figures(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write accuracy_vs_rate and param_reduction_vs_rate; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = _done(df)
    if df.empty:
        return []
    df = df.assign(accuracy_pct=100 * df["accuracy"], param_reduction_pct=100 * df["param_reduction"])
    specs = [("accuracy_vs_rate", "accuracy_pct", "top-1 accuracy after fine-tuning (%)",
              "Accuracy vs pruning rate"),
             ("param_reduction_vs_rate", "param_reduction_pct", "parameter reduction (%)",
              "Parameter reduction vs pruning rate")]
    written = []
    for stem, metric, ylabel, title in specs:
        fig = _panels(df, metric, ylabel, title, with_baseline=True)
        for fmt in FORMATS:
            path = out_dir / f"{stem}.{fmt}"
            fig.savefig(path, dpi=130)
            written.append(path)
        plt.close(fig)
    return written
