"""Results where users already look: a run folder logged to an MLflow tracking
store (`edgeprune export RUN --mlflow [URI]`, the `mlflow` extra).

One experiment per sweep name; one parent run per run folder (tagged with its
path); one nested run per trial (tagged with its id): the trial's spec as params,
its scalar metrics, its status, and its model card as an artifact; the parent gets
the report's figures and page. Exporting again updates rather than duplicates:
runs are found by their tags, and a trial already logged as finished (finished
trials never change) is left as it is.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import EdgepruneError, RunError, first_line
from .run import RunFolder
from .store import TrialRecord

DEFAULT_URI = "sqlite:///mlflow.db"
_STATUS = {"done": "FINISHED", "failed": "FAILED", "running": "RUNNING", "pending": "SCHEDULED",
           "cancelled": "KILLED"}
_FINAL = ("FINISHED", "FAILED")


@dataclass
class TrackingResult:
    uri: str
    experiment_id: str
    parent_run_id: str
    created: int            # trial runs made now
    updated: int            # trial runs brought up to date (they were unfinished)
    unchanged: int          # trial runs already final


def _client(uri: str):
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise EdgepruneError("export --mlflow needs MLflow: pip install 'edgeprune[mlflow]'") from None
    return MlflowClient(tracking_uri=uri)


def _params(record: TrialRecord) -> dict[str, str]:
    spec = record.spec
    flat = {"model": spec["model"].get("name"), "model.pretrained": spec["model"].get("pretrained"),
            "model.checkpoint": spec["model"].get("checkpoint"), "algorithm": record.algorithm,
            "target_kind": record.target_kind, "rate": record.rate, "seed": record.seed,
            "quantize": spec.get("quantize", "none")}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = node

    walk("", spec.get("settings", {}))
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v) for k, v in flat.items()}


def _metrics(record: TrialRecord) -> dict[str, float]:
    out = {}
    for k, v in record.metrics.items():
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[k] = float(v)
    return out


def _find(client, experiment_id: str, tags: dict) -> Optional[object]:
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client.search_runs([experiment_id], filter_string=query, max_results=2)
    return runs[0] if runs else None


def _artifact_root(uri: str) -> Optional[str]:
    """Artifacts of a sqlite store go beside its database file: MLflow would put them
    in ./mlruns of whatever folder the export happens to run in."""
    if not uri.startswith("sqlite:///"):
        return None                     # file stores and servers know where theirs go
    return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlruns").as_uri()


def export_mlflow(run_dir: str | Path, uri: Optional[str] = None, experiment: Optional[str] = None,
                  artifacts: bool = True) -> TrackingResult:
    """Log every trial of `run_dir` to the MLflow tracking store at `uri` (default:
    $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    client = _client(uri)
    from mlflow.entities import Metric, Param, RunTag
    run = RunFolder(run_dir)
    records = run.trials()
    config = run.raw_config() or {}
    name = experiment or config.get("name") or run.path.name
    folder = str(run.path.resolve())
    try:
        exp = client.get_experiment_by_name(name)
        experiment_id = exp.experiment_id if exp else client.create_experiment(name, _artifact_root(uri))
        parent = _find(client, experiment_id, {"edgeprune.run_dir": folder, "edgeprune.kind": "sweep"})
        if parent is None:
            parent = client.create_run(experiment_id, run_name=run.path.name, tags={
                "edgeprune.run_dir": folder, "edgeprune.sweep": name, "edgeprune.kind": "sweep"})
        parent_id = parent.info.run_id
        created = updated = unchanged = 0
        for t in records:
            existing = _find(client, experiment_id, {"edgeprune.run_dir": folder, "edgeprune.kind": "trial",
                                                     "edgeprune.trial_id": t.trial_id})
            if existing is not None and existing.info.status in _FINAL:
                unchanged += 1
                continue
            if existing is None:
                child = client.create_run(experiment_id, run_name=_run_name(t), tags={
                    "mlflow.parentRunId": parent_id, "edgeprune.run_dir": folder, "edgeprune.kind": "trial",
                    "edgeprune.trial_id": t.trial_id})
                client.log_batch(child.info.run_id, params=[Param(k, v[:6000]) for k, v in _params(t).items()])
                created += 1
            else:
                child, updated = existing, updated + 1
            run_id = child.info.run_id
            stamp = int((t.finished_at or t.started_at or 0) * 1000)
            client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in _metrics(t).items()],
                             tags=[RunTag("edgeprune.status", t.status)] +
                                  ([RunTag("edgeprune.error", t.error[:5000])] if t.error else []))
            if artifacts and t.status == "done":
                _log_card(client, run_id, run, t)
            status = _STATUS[t.status]
            if status in _FINAL:
                client.set_terminated(run_id, status, end_time=int((t.finished_at or 0) * 1000) or None)
        if artifacts:
            _log_report(client, parent_id, run.path)
        done = all(t.status in ("done", "failed") for t in records)
        client.set_terminated(parent_id, "FINISHED" if done else "RUNNING")
    except EdgepruneError:
        raise
    except Exception as e:  # noqa: BLE001 - an unreachable or broken tracking store: one line
        raise RunError(f"MLflow at {uri!r} refused the export ({type(e).__name__}: {first_line(e, 200)})") from None
    return TrackingResult(uri, experiment_id, parent_id, created, updated, unchanged)


def _run_name(t: TrialRecord) -> str:
    from .config import rate_label
    return f"{t.model} {t.algorithm} {rate_label(t.algorithm, t.target_kind, t.rate)}".replace(" none baseline",
                                                                                              " baseline")


def _log_card(client, run_id: str, run: RunFolder, t: TrialRecord) -> None:
    from .model_card import model_card
    card, text = model_card(run, t)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model_card.json").write_text(json.dumps(card, indent=1, default=str))
        (Path(tmp) / "model_card.md").write_text(text)
        client.log_artifacts(run_id, tmp)


def _log_report(client, run_id: str, run_dir: Path) -> None:
    from .report import report
    with tempfile.TemporaryDirectory() as tmp:
        report(run_dir, tmp)
        client.log_artifacts(run_id, tmp, artifact_path="report")
