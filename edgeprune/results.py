"""The trials of run folders as one flat table (pandas), the one view that
`load_results`, the report, `recommend` and the CSV export read.

Columns: run, key (run/trial_id, unique), trial_id, position, model, algorithm,
target_kind, rate, rate_label, seed, status, error, attempts, then every metric of
the schema (edgeprune.metrics; NaN where a trial lacks it), then any other scalar
metric the trials stored, then the derived columns:
  baseline_accuracy  accuracy of the same model's unpruned baseline trial with the
                     same fine-tuning (same run and seed, else the mean over that
                     run's seeds, else the model's accuracy before fine-tuning)
  accuracy_drop      baseline_accuracy - accuracy
  series             the model, prefixed by the run in a comparison
  name               "resnet20 l1 0.5" (+ "seed N" when seeds differ, "refined" for a refinement)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from .config import BASELINE, rate_label
from .metrics import METRICS
from .run import RunFolder
from .store import TrialRecord

IDENTITY = ["run", "key", "trial_id", "position", "model", "algorithm", "target_kind", "rate", "rate_label", "seed",
            "strategy", "stage", "parent", "status", "error", "attempts"]
TEXT_METRICS = ("model_path", "onnx_path", "latency_backend", "size_kind", "quantize", "fp32_trial_id", "warning",
                "cpu_int8", "int8_slower_on", "float_layers")
DERIVED = ("baseline_accuracy", "accuracy_drop")


def _scalar(v):
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return v


def trials_frame(records: Iterable[TrialRecord], run: str = "") -> pd.DataFrame:
    rows, extra = [], {}
    schema = [m for m in METRICS if m not in DERIVED]
    for t in records:
        row = {"run": run, "key": f"{run}/{t.trial_id}", "trial_id": t.trial_id, "position": t.position,
               "model": t.model, "algorithm": t.algorithm, "target_kind": t.target_kind, "rate": float(t.rate),
               "rate_label": rate_label(t.algorithm, t.target_kind, t.rate), "seed": int(t.seed),
               "strategy": t.spec.get("settings", {}).get("strategy", "independent"),
               "stage": t.spec.get("stage", "prune"), "parent": t.spec.get("parent"),
               "status": t.status, "error": t.error or "", "attempts": t.attempts}
        for k in schema:
            v = t.metrics.get(k)
            if METRICS[k].kind == "text":
                row[k] = v if isinstance(v, str) else None
            else:
                row[k] = float(v) if isinstance(v, (int, float)) else math.nan      # a flag (bool): 1.0 / 0.0
        for k, v in t.metrics.items():
            if k in row or isinstance(v, (dict, list)) or v is None:
                continue
            if k in TEXT_METRICS or isinstance(v, str):
                extra.setdefault(k, "text")
                row[k] = v
            else:
                extra.setdefault(k, "number")
                row[k] = _scalar(v)
        rows.append(row)
    columns = IDENTITY + schema + sorted(extra)
    df = pd.DataFrame(rows, columns=columns)
    df["parent"] = df["parent"].astype(object).where(df["parent"].notna(), None)
    for k, kind in extra.items():
        if kind == "text":
            df[k] = df[k].astype(object).where(df[k].notna(), None)
    return df


def derive(df: pd.DataFrame, multi_run: bool = False) -> pd.DataFrame:
    """Add the derived columns (see the module docstring)."""
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
                  + (f" seed {r.seed}" if seeds else "") + (" refined" if r.stage == "refine" else "")
                  + (f" +{r.chain_steps:.0f} steps" if r.stage == "rung" and r.chain_steps == r.chain_steps else "")
                  for r in df.itertuples()]
    return df


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """The trials of a run folder as a pandas DataFrame (one row per trial)."""
    run = RunFolder(run_dir)
    return derive(trials_frame(run.trials())).drop(columns=["run", "key", "series"])
