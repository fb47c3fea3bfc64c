"""What the report and `recommend` read: the trials of one or more run folders as
one flat table (edgeprune.results), with the runs they came from. Read-only.

Every trial is a row whatever its status (pending, running and failed trials
have empty metrics), so a report drawn mid-sweep lists what is still to come.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from ..errors import EdgepruneError
from ..results import derive, trials_frame
from ..run import RunFolder
from ..store import STATUSES


@dataclass
class RunInfo:
    label: str                      # how the run is named in a comparison
    path: Path
    name: str                       # the sweep's `name:`
    config: Optional[dict]          # RUN/config.yaml, when there is one
    counts: dict[str, int]

    @property
    def unfinished(self) -> int:
        return self.counts.get("pending", 0) + self.counts.get("running", 0)


@dataclass
class ReportData:
    runs: list[RunInfo]
    trials: pd.DataFrame            # one row per trial, every status (edgeprune.results)
    layers: dict[str, dict[str, list[int]]] = field(default_factory=dict)   # key -> layer -> [before, after]

    @property
    def done(self) -> pd.DataFrame:
        return self.trials[self.trials["status"] == "done"]

    @property
    def multi_run(self) -> bool:
        return len(self.runs) > 1

    @property
    def multi_seed(self) -> bool:
        return self.trials["seed"].nunique() > 1


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Short distinct names for run folders: the folder name, with as many parent
    folders as it takes to tell them apart."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def load_runs(run_dirs: str | Path | Sequence[str | Path], labels: Optional[Sequence[str]] = None) -> ReportData:
    """Read the trials of one or more run folders (read-only); see edgeprune.results
    for the columns."""
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise EdgepruneError("no run folder given")
    if labels is None:
        labels = unique_labels(paths)
    else:
        labels = [str(x) for x in labels]
        if len(labels) != len(paths):
            raise EdgepruneError(f"{len(labels)} labels for {len(paths)} runs; give one label per run")
        if len(set(labels)) != len(labels):
            raise EdgepruneError(f"run labels must differ: {', '.join(labels)}")
    runs, frames, layers = [], [], {}
    for label, path in zip(labels, paths):
        run = RunFolder(path)
        with run.store() as store:
            records, counts = store.trials(), store.counts()
        config = run.raw_config()
        runs.append(RunInfo(label, path, (config or {}).get("name") or path.name, config, counts))
        frames.append(trials_frame(records, run=label))
        for t in records:
            lc = t.metrics.get("layer_channels")
            if isinstance(lc, dict) and lc:
                layers[f"{label}/{t.trial_id}"] = {str(k): [int(v[0]), int(v[1])] for k, v in lc.items()}
    frames = [f for f in frames if len(f)] or frames[:1]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return ReportData(runs, derive(df, multi_run=len(paths) > 1), layers)


def status_summary(counts: dict[str, int]) -> str:
    """'9 done, 1 failed, 1 running, 2 pending' (statuses with no trial left out)."""
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts.get(s)]
    return ", ".join(parts) or "no trials"
