"""`show` prints what trials recorded as text: rich would read "[...]" in an error or a
warning as markup and drop it (a failed trial's fix, "target.layers: [conv2d, linear]",
printed as "target.layers: ")."""
from __future__ import annotations

import io

from rich.console import Console

from edgeprune.report.table import print_trials
from edgeprune.store import ResultStore
from test_int8_speed import _run_with_a_slower_int8


def test_show_prints_brackets_in_errors_and_warnings_as_written(tmp_path):
    run, rows = _run_with_a_slower_int8(tmp_path / "run")
    with ResultStore(run, create=False) as store:
        trials = store.trials()
    trials[1].status, trials[1].error = "failed", "cannot remove 85% of the macs; target.layers: [conv2d, linear]"
    trials[0].metrics["warning"] = "try target.layers: [conv2d, linear]"
    out = io.StringIO()
    print_trials(trials, console=Console(file=out, width=200), wide=True)
    text = out.getvalue()
    assert "target.layers: [conv2d, linear]" in text.split("failed", 2)[-1]
    assert "try target.layers: [conv2d, linear]" in text
