"""Comparing trials: terminal tables and figures."""
from pathlib import Path

from ..store import ResultStore
from .figures import write_figures
from .table import print_trials, trials_table

__all__ = ["print_trials", "trials_table", "write_figures", "report"]


def report(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw the figures of a run (into RUN/report by default); returns the files."""
    with ResultStore(run_dir, create=False) as store:
        df = store.to_dataframe()
    return write_figures(df, Path(out_dir) if out_dir else Path(run_dir) / "report")
