"""Draw a report `Figure` with matplotlib, as PNG and SVG files."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from ..metrics import short_number  # noqa: E402
from .figures import Figure, Trace  # noqa: E402

FORMATS = ("png", "svg")
_MARKERS = {"circle": "o", "square": "s", "diamond": "D", "triangle-up": "^", "cross": "P", "x": "X",
            "triangle-down": "v", "pentagon": "p", "hexagon": "h", "star": "*", "star-square": "s",
            "triangle-left": "<", "triangle-right": ">", "diamond-open": "d"}


def _color(c):
    if c and c.startswith("rgba("):
        r, g, b, a = (float(x) for x in c[5:-1].split(","))
        return (r / 255, g / 255, b / 255, a)
    return c


def _draw(ax, t: Trace, categorical: list | None) -> None:
    x = [categorical.index(v) for v in t.x] if categorical is not None else t.x
    if t.mode == "heatmap":
        im = ax.imshow([[float("nan") if v is None else v for v in row] for row in t.z], aspect="auto",
                       vmin=0, vmax=t.zmax, cmap="viridis")
        ax.figure.colorbar(im, ax=ax, label=t.zlabel)
        small = 6 if max(len(t.x), len(t.y)) > 30 else 8
        ax.set_xticks(range(len(t.x)), [str(v) for v in t.x], rotation=90 if len(t.x) > 12 else 0, fontsize=small)
        ax.set_yticks(range(len(t.y)), [str(v) for v in t.y], fontsize=small)
        return
    if t.mode == "step":
        ax.step(x, t.y, where="post", color=_color(t.color), ls="--", lw=1, zorder=1, label=t.name)
        return
    kw = dict(color=_color(t.color), label=t.name if t.legend else None)
    if t.mode == "lines+markers":
        ax.errorbar(x, t.y, yerr=t.error, marker="o", ms=4, capsize=2 if t.error else 0, **kw)
    else:
        star = t.symbol == "star"
        ax.scatter(x, t.y, s=90 if star else 22, marker=_MARKERS.get(t.symbol, "o"), zorder=3 if star else 2,
                   edgecolors="white" if star else "none", linewidths=0.5, **kw)
        if t.error or t.xerror:
            ax.errorbar(x, t.y, yerr=t.error, xerr=t.xerror, fmt="none", ecolor=_color(t.color), capsize=2)


def render_static(fig: Figure):
    rows = math.ceil(len(fig.panels) / fig.cols)
    # constrained layout sizes the legend's column to its labels (no empty band beside it)
    mpl, axes = plt.subplots(rows, fig.cols, figsize=(4.4 * fig.cols + 1.8, 3.9 * rows), sharey=fig.shared_y,
                             squeeze=False, layout="constrained")
    for i, panel in enumerate(fig.panels):
        ax = axes[i // fig.cols][i % fig.cols]
        for t in panel.traces:
            _draw(ax, t, panel.categories)
        for y, label in panel.hlines:
            ax.axhline(y, color="#222222", ls=":", lw=1)
        if panel.categories is not None:
            ax.set_xticks(range(len(panel.categories)), panel.categories)
        if panel.xlog:
            _log_axis(ax)
        elif panel.categories is None and not any(t.mode == "heatmap" for t in panel.traces):
            _linear_axis(ax)        # a heatmap labels its own cells
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xtitle)
        if panel.ytitle:
            ax.set_ylabel(panel.ytitle)
        ax.grid(alpha=0.3)
    for j in range(len(fig.panels), rows * fig.cols):
        axes[j // fig.cols][j % fig.cols].set_visible(False)
    seen, handles, labels = set(), [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen:
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if handles:
        mpl.legend(handles, labels, loc="outside right center", frameon=False, fontsize=8)
    mpl.suptitle(fig.title)
    return mpl


def _linear_axis(ax) -> None:
    """At most 6 ticks, in short numbers (200k, not 200000, which run into each other)."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: short_number(v)))


def _log_axis(ax) -> None:
    """A log axis labelled at 1, 2 and 5 of each decade in short numbers (250k, 1.2M):
    matplotlib's default labels every minor tick of a range under a decade in
    scientific notation, and the labels print on top of each other."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: short_number(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def write_figures(figures: dict[str, Figure], out_dir: str | Path) -> list[Path]:
    """Write each figure as PNG and SVG; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in figures.items():
        mpl = render_static(fig)
        for fmt in FORMATS:
            path = out_dir / f"{stem}.{fmt}"
            mpl.savefig(path, dpi=130)
            written.append(path)
        plt.close(mpl)
    return written
