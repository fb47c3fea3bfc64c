"""Comparing trials: terminal tables, static figures and the HTML report.

    report(RUN)                  -> RUN/report/report.html + PNG/SVG figures
    compare([RUN_A, RUN_B])      -> the same report with the runs overlaid
    watch_report([RUN])          -> regenerates it whenever the sweep stores a result
"""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..run import RunFolder
from .data import ReportData, load_runs, status_summary
from .figures import static_figures
from .html import HTML_NAME, render_html, write_html
from .recovery_figure import recovery_path
from .search_figure import search_records, search_rungs
from .sensitivity_figure import sensitivity_map_figure, sensitivity_maps
from ..pareto import pareto_front, pareto_mask
from .render_static import write_figures
from .table import print_trials, trials_table

__all__ = ["print_trials", "trials_table", "write_figures", "report", "compare", "write_report", "watch_report",
           "load_runs", "ReportData", "render_html", "write_html", "pareto_front", "pareto_mask",
           "status_summary", "HTML_NAME", "DEFAULT_COMPARE_DIR"]

DEFAULT_COMPARE_DIR = "compare-report"


def write_report(run_dirs: str | Path | Sequence[str | Path], out_dir: str | Path,
                 labels: Optional[Sequence[str]] = None, figures: bool = True) -> list[Path]:
    """Write the PNG/SVG figures (when a trial is done) and report.html into
    `out_dir`; returns the files, the HTML page last."""
    data = load_runs(run_dirs, labels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = {**static_figures(data.trials), "recovery_path": recovery_path(data.trials, "recovery_path"),
             "search_rungs": search_rungs(data.trials, search_records(data), "search_rungs"),
             "sensitivity_maps": sensitivity_map_figure(sensitivity_maps(data), "sensitivity_maps")}
    files = write_figures({k: f for k, f in drawn.items() if not f.empty}, out_dir) if figures else []
    page = write_html(data, out_dir / HTML_NAME, files=[f.name for f in files])
    return files + [page]


def report(run_dir: str | Path, out_dir: str | Path | None = None, figures: bool = True) -> list[Path]:
    """The report of one run (into RUN/report by default); returns the files, the
    HTML page last. Works mid-sweep: unfinished trials are listed as such.
    `figures=False` skips the PNG/SVG files."""
    return write_report([run_dir], Path(out_dir) if out_dir else RunFolder(run_dir).report_dir, figures=figures)


def compare(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None,
            labels: Optional[Sequence[str]] = None, figures: bool = True) -> list[Path]:
    """One report with several runs overlaid (e.g. two fine-tune budgets, or two
    machines' latency); runs are named by their folders unless `labels` are given."""
    return write_report(list(run_dirs), Path(out_dir) if out_dir else Path(DEFAULT_COMPARE_DIR), labels,
                        figures=figures)


def _state(run_dirs: Sequence[str | Path]) -> tuple:
    return tuple(tuple((t.trial_id, t.status, t.finished_at) for t in RunFolder(run).trials()) for run in run_dirs)


def watch_report(run_dirs: Sequence[str | Path], out_dir: str | Path, labels: Optional[Sequence[str]] = None,
                 interval: float = 30.0, on_write: Optional[Callable[[list[Path]], None]] = None,
                 max_rounds: Optional[int] = None, figures: bool = True) -> list[Path]:
    """Regenerate the report whenever a trial changes state, until no trial is
    pending or running (or `max_rounds` checks); returns the last files written."""
    run_dirs = list(run_dirs)
    last, files, rounds = None, [], 0
    while True:
        state = _state(run_dirs)
        if state != last:
            files = write_report(run_dirs, out_dir, labels, figures=figures)
            last = state
            if on_write:
                on_write(files)
        rounds += 1
        unfinished = sum(status in ("pending", "running") for run in state for _, status, _ in run)
        if unfinished == 0 or (max_rounds is not None and rounds >= max_rounds):
            return files
        time.sleep(interval)


class _CallableModule(types.ModuleType):
    """`edgeprune.report(RUN)` is the top-level API's function, and `edgeprune.report` is
    also this package: once anything imports the package, Python puts the package where
    the function was. Calling the package calls the function, so both keep working."""

    def __call__(self, *args, **kwargs):
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
