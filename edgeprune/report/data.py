"""What the report and `recommend` read: the trials of one or more run folders as
one flat table, with the columns a comparison needs derived once, here.

Every trial is a row whatever its status (pending, running and failed trials
have empty metrics), so a report drawn mid-sweep lists what is still to come.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import yaml

from ..errors import EdgepruneError
from ..store import STATUSES, ResultStore

BASELINE = "none"

# Metrics every row has (NaN where a trial has not got them), in a stable order.
METRICS = ("accuracy", "accuracy_pruned", "base_accuracy", "params", "params_base", "param_reduction",
           "macs", "macs_base", "mac_reduction", "size_bytes", "latency_ms", "latency_p90_ms",
           "latency_threads", "prune_seconds", "finetune_seconds", "finetune_steps", "finetune_epochs",
           "channel_ratio", "layer_rate", "input_size", "sparsity", "trial_seconds")


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
    trials: pd.DataFrame            # one row per trial, every status; see load_runs
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


def rate_label(algorithm: str, target_kind: str, rate: float) -> str:
    """'0.5' for a channel rate, 'params=0.5' / 'macs=0.5' for a global target, 'baseline'."""
    if algorithm == BASELINE:
        return "baseline"
    return f"{rate:g}" if target_kind == "channels" else f"{target_kind}={rate:g}"


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Short distinct names for run folders: the folder name, with as many parent
    folders as it takes to tell them apart."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def _read_config(run_dir: Path) -> Optional[dict]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def load_runs(run_dirs: str | Path | Sequence[str | Path], labels: Optional[Sequence[str]] = None) -> ReportData:
    """Read the trials of one or more run folders (read-only).

    Columns: run, key (run/trial_id, unique), trial_id, position, model, algorithm,
    target_kind, rate, rate_label, seed, status, error, every metric of METRICS,
    plus baseline_accuracy (the accuracy of the same model's unpruned baseline trial
    with the same fine-tuning: same run and seed, else the mean over that run's seeds,
    else the model's accuracy before fine-tuning), accuracy_drop (baseline_accuracy -
    accuracy), series (the model, prefixed by the run in a comparison) and name.
    """
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

    runs, rows, layers = [], [], {}
    for label, path in zip(labels, paths):
        with ResultStore(path, create=False) as store:
            records = store.trials()
            counts = store.counts()
        config = _read_config(path)
        runs.append(RunInfo(label, path, (config or {}).get("name") or path.name, config, counts))
        for t in records:
            key = f"{label}/{t.trial_id}"
            row = {"run": label, "key": key, "trial_id": t.trial_id, "position": t.position, "model": t.model,
                   "algorithm": t.algorithm, "target_kind": t.target_kind, "rate": float(t.rate),
                   "rate_label": rate_label(t.algorithm, t.target_kind, t.rate), "seed": int(t.seed),
                   "status": t.status, "error": t.error or "", "attempts": t.attempts,
                   "model_path": t.metrics.get("model_path")}
            for m in METRICS:
                v = t.metrics.get(m)
                row[m] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
            rows.append(row)
            lc = t.metrics.get("layer_channels")
            if isinstance(lc, dict) and lc:
                layers[key] = {str(k): [int(v[0]), int(v[1])] for k, v in lc.items()}

    df = pd.DataFrame(rows, columns=["run", "key", "trial_id", "position", "model", "algorithm", "target_kind",
                                     "rate", "rate_label", "seed", "status", "error", "attempts", "model_path",
                                     *METRICS])
    df = _derive(df, multi_run=len(paths) > 1)
    return ReportData(runs, df, layers)


def _derive(df: pd.DataFrame, multi_run: bool) -> pd.DataFrame:
    df = df.copy()
    base = df[(df["algorithm"] == BASELINE) & (df["status"] == "done")]
    by_seed = {(r.run, r.model, r.seed): r.accuracy for r in base.itertuples()}
    by_model = base.groupby(["run", "model"])["accuracy"].mean().to_dict()
    ref = []
    for r in df.itertuples():
        v = by_seed.get((r.run, r.model, r.seed))
        if v is None or math.isnan(v):
            v = by_model.get((r.run, r.model), math.nan)
        if math.isnan(v):
            v = r.base_accuracy
        ref.append(v)
    df["baseline_accuracy"] = pd.Series(ref, index=df.index, dtype=float)
    df["accuracy_drop"] = df["baseline_accuracy"] - df["accuracy"]
    df["series"] = (df["run"] + " · " + df["model"]) if multi_run else df["model"]
    seeds = df["seed"].nunique() > 1
    df["name"] = [f"{r.series} {r.algorithm if r.algorithm != BASELINE else ''} "
                  f"{r.rate_label if r.algorithm != BASELINE else 'baseline'}".replace("  ", " ")
                  + (f" seed {r.seed}" if seeds else "") for r in df.itertuples()]
    return df


def status_summary(counts: dict[str, int]) -> str:
    """'9 done, 1 failed, 1 running, 2 pending' (statuses with no trial left out)."""
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts.get(s)]
    return ", ".join(parts) or "no trials"
