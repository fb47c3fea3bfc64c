"""`edgeprune show`: the trials of a run as a terminal table."""
from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from ..store import TrialRecord

_STATUS_STYLE = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim", "cancelled": "magenta"}


def _pct(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _num(v, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def _rate(t: TrialRecord) -> str:
    if t.algorithm == "none":
        return "-"
    return f"{t.rate:g}" if t.target_kind == "channels" else f"{t.target_kind}={t.rate:g}"


def trials_table(trials: list[TrialRecord], title: str = "") -> Table:
    table = Table(title=title, header_style="bold")
    for col, justify in [("model", "left"), ("algorithm", "left"), ("rate", "right"), ("status", "left"),
                         ("acc %", "right"), ("acc pruned %", "right"), ("params", "right"),
                         ("params -%", "right"), ("MACs (M)", "right"), ("MACs -%", "right"),
                         ("size (KB)", "right"), ("latency ms", "right")]:
        table.add_column(col, justify=justify)
    for t in trials:
        m = t.metrics
        status = f"[{_STATUS_STYLE.get(t.status, '')}]{t.status}[/]"
        if t.status == "failed" and t.error:
            status += f" [dim]{t.error[:60]}[/]"
        table.add_row(t.model, t.algorithm, _rate(t), status, _pct(m.get("accuracy")),
                      _pct(m.get("accuracy_pruned")), _num(m.get("params"), ","), _pct(m.get("param_reduction")),
                      _num(m["macs"] / 1e6 if "macs" in m else None, ".2f"), _pct(m.get("mac_reduction")),
                      _num(m["size_bytes"] / 1024 if "size_bytes" in m else None, ".0f"),
                      _num(m.get("latency_ms"), ".2f"))
    return table


def print_trials(trials: list[TrialRecord], title: str = "", console: Console | None = None) -> None:
    (console or Console()).print(trials_table(trials, title))
