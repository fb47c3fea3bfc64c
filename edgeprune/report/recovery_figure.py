"""Each trial's recovery path, drawn: the accuracy right after pruning, after
BatchNorm recalibration, after rebuilding by least squares, and after
fine-tuning, against the pruning rate. It shows how much of a point on the
curve the architecture owes to SGD and how much to the cheap recovery."""
from __future__ import annotations

import math

import pandas as pd

from ..config import BASELINE
from .figures import Figure, Panel, Trace, _done, empty

# column -> (legend label, colour): the stages in the order a trial passes them
STAGES = {
    "accuracy_pruned": ("pruned", "#BBBBBB"),
    "accuracy_recalibrated": ("BN recalibrated", "#FFA15A"),
    "accuracy_reconstructed": ("rebuilt (least squares)", "#00CC96"),
    "accuracy": ("fine-tuned", "#636EFA"),
}
MAX_PANELS = 12


def recovery_path(df: pd.DataFrame, fig_id: str) -> Figure:
    """A panel per series and algorithm, a line per recovery stage through the mean
    over seeds; the unpruned model as a dotted line. Drawn when a run recorded a
    recalibrated or rebuilt accuracy."""
    if not any(c in df and df[c].notna().any() for c in ("accuracy_recalibrated", "accuracy_reconstructed")):
        return empty(fig_id, "no trial was recalibrated or rebuilt (prune.recalibrate_bn and prune.reconstruct "
                             "were 0)")
    done = _done(df, "accuracy", screened=True)
    pruned = done[(done["algorithm"] != BASELINE) & (done["target_kind"] == "channels")]
    if pruned.empty:
        return empty(fig_id, "no finished pruned trials yet")
    pairs = sorted(pruned.groupby(["series", "algorithm"]).groups)[:MAX_PANELS]
    panels = []
    for i, (series, algorithm) in enumerate(pairs):
        rows = pruned[(pruned["series"] == series) & (pruned["algorithm"] == algorithm)]
        panel = Panel(title=f"{series} · {algorithm}", xtitle="pruning rate",
                      ytitle="top-1 accuracy (%)" if i % 3 == 0 else "", yrange=(0, 100))
        for column, (label, color) in STAGES.items():
            if column not in rows or rows[column].isna().all():
                continue
            mean = rows.groupby("rate")[column].mean().dropna() * 100
            keys = rows.groupby("rate")["key"].first().reindex(mean.index)
            panel.traces.append(Trace(list(mean.index), list(mean.values), label, "lines+markers", color, size=7,
                                      keys=list(keys.values), group=label, legend=i == 0,
                                      hover=[f"{series} · {algorithm} rate {r:g}<br>{label}: {a:.2f}%"
                                             for r, a in zip(mean.index, mean.values)]))
        base = done[(done["series"] == series) & (done["algorithm"] == BASELINE)]
        if not base.empty:
            panel.hlines.append((100 * base["accuracy"].mean(), "unpruned"))
        panels.append(panel)
    more = len(pruned.groupby(["series", "algorithm"])) - len(pairs)
    title = "Recovery path: pruned, recalibrated, rebuilt, fine-tuned" + (f" (first {MAX_PANELS} of "
                                                                          f"{MAX_PANELS + more})" if more else "")
    return Figure(fig_id, title, panels, cols=min(3, len(panels)), legend_title="stage",
                  height=330 * math.ceil(len(panels) / 3) + 80)
