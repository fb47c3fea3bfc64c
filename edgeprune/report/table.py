"""Terminal tables that fit the terminal: `edgeprune show` and `edgeprune recommend`.

Trial id, model, algorithm, rate, status, accuracy, parameters and latency are
always shown; the other columns (edgeprune.metrics.SHOW_ORDER) join while they
fit the width, all of them with `wide`. Numbers are abbreviated (5.47M, 43.8MB).
Failed trials' errors are listed under the table, whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..config import BASELINE, rate_label
from ..metrics import SHOW_ORDER, fmt, metric
from ..store import TrialRecord

_STATUS_STYLE = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim", "cancelled": "magenta"}
_GAP = 2     # rich's padding between columns
ALWAYS_METRICS = ("accuracy", "params", "latency_ms")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    right: bool = True          # numbers are right-aligned
    always: bool = False


def identity_columns(*extra: str) -> list[Column]:
    names = {"trial": "trial", "model": "model", "algorithm": "algo", "rate": "rate", "status": "status",
             "rank": "#", "run": "run", "seed": "seed", "made": "made"}
    return [Column(k, names[k], right=k in ("rank", "seed"), always=True) for k in extra]


def metric_columns(keys=SHOW_ORDER, mark: Optional[str] = None) -> list[Column]:
    return [Column(k, metric(k).header + ("*" if k == mark else ""), always=k in ALWAYS_METRICS) for k in keys]


def fit_table(rows: list[dict[str, str]], columns: list[Column], width: int, wide: bool = False,
              title: str = "", styles: Optional[list[dict]] = None) -> Table:
    """A rich Table of `rows` with the `always` columns and as many of the others (in
    order) as fit `width` characters; empty columns are left out."""
    def need(c: Column) -> int:
        return max([len(c.header)] + [len(r.get(c.key, "")) for r in rows]) + _GAP

    present = [c for c in columns if c.always and (c.key in ("rank", "seed", "trial", "model", "algorithm", "rate",
                                                            "status") or any(r.get(c.key) for r in rows))]
    used = sum(need(c) for c in present)
    for c in columns:
        if c.always or not any(r.get(c.key) for r in rows):
            continue
        if wide or used + need(c) <= width:
            present.append(c)
            used += need(c)
    present.sort(key=columns.index)
    table = Table(title=title or None, header_style="bold", box=None, pad_edge=False, show_edge=False)
    table.natural_width = sum(need(c) for c in present)      # what it takes not to cut a cell
    for c in present:
        table.add_column(c.header, justify="right" if c.right else "left", no_wrap=True)
    for i, r in enumerate(rows):
        style = (styles or [{}] * len(rows))[i]
        # cells are text, not rich markup: a model alias or a label may hold brackets
        table.add_row(*[f"[{style[c.key]}]{escape(r.get(c.key, ''))}[/]" if c.key in style
                        else escape(r.get(c.key, "")) for c in present])
    return table


def made(t: TrialRecord) -> str:
    """How a trial was made: '' (from the unpruned model), 'cascade' (from its parent's
    fine-tuned model), 'refine +2ep', 'rung +150' (a rung of find: steps added)."""
    if t.spec.get("stage") == "refine":
        return f"refine +{t.spec.get('budget') or 0:g}ep"
    if t.spec.get("stage") == "rung":
        return f"rung +{t.spec.get('budget') or 0:g}"
    return "cascade" if t.spec.get("parent") else ""


def _cells(t: TrialRecord) -> dict[str, str]:
    cells = {"trial": t.trial_id[:8], "model": t.model, "algorithm": t.algorithm,
             "rate": "-" if t.algorithm == BASELINE else rate_label(t.algorithm, t.target_kind, t.rate),
             "made": made(t), "status": t.status}
    cells.update({k: fmt(k, t.metrics.get(k)) for k in SHOW_ORDER})
    if t.metrics.get("int8_slower") and cells.get("latency_ms"):
        cells["latency_ms"] += " !"          # an int8 file slower than its fp32 twin (listed under the table)
    return cells


def trials_table(trials: list[TrialRecord], title: str = "", width: int = 120, wide: bool = False) -> Table:
    columns = identity_columns("trial", "model", "algorithm", "rate", "made", "status") + metric_columns()
    styles = [{"status": _STATUS_STYLE[t.status]} if t.status in _STATUS_STYLE else {} for t in trials]
    return fit_table([_cells(t) for t in trials], columns, width, wide, title, styles)


def print_table(table: Table, console: Optional[Console] = None, wide: bool = False) -> None:
    """Print a fitted table; a `wide` one as wide as it needs, not cut to the terminal."""
    console = console or Console()
    if wide:
        console = Console(width=max(console.width, getattr(table, "natural_width", 0)), file=console.file)
    console.print(table)


def print_trials(trials: list[TrialRecord], title: str = "", console: Optional[Console] = None,
                 wide: bool = False) -> None:
    console = console or Console()
    print_table(trials_table(trials, title, width=console.width, wide=wide), console, wide)
    for t in trials:
        if t.status == "failed" and t.error:
            # an error is text: rich would take "[conv2d, linear]" in it for markup and drop it
            console.print(f"[red]failed[/] {t.trial_id[:8]} {escape(t.model)} {t.algorithm}: {escape(t.error)}",
                          highlight=False, soft_wrap=True)
        slower = t.metrics.get("int8_slower_on")
        if slower and t.status == "done":
            twin = str(t.metrics.get("fp32_trial_id") or "")[:8]
            console.print(f"[yellow]int8 slower[/] {t.trial_id[:8]} {t.model}: slower than its fp32 twin"
                          + (f" {twin}" if twin else "") + f" on {slower} (latency int8 / fp32, paired with the "
                          "unpruned model); on that runtime the fp32 model is the faster choice",
                          highlight=False, soft_wrap=True)
        warning = t.metrics.get("warning")
        if warning:
            console.print(f"[yellow]warning[/] {t.trial_id[:8]} {escape(t.model)}: {escape(warning)}",
                          highlight=False, soft_wrap=True)
