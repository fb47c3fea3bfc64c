"""Expanding a sweep config into trials: every model x algorithm x rate, plus one
unpruned baseline per model with the same fine-tuning (its curve's reference)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from ..config import SweepConfig

BASELINE = "none"

# Where the data lives or what the run is called does not change a result.
_NOT_IDENTITY = {"out", "name", "executor", "threads", "ray", "storage", "save_models", "models", "algorithms", "rates", "baseline"}
_DATASET_NOT_IDENTITY = {"root", "download"}


@dataclass(frozen=True)
class TrialSpec:
    model: dict           # ModelSpec as a dict (name, pretrained, checkpoint, alias)
    algorithm: str        # "none" for the baseline
    target_kind: str      # channels | params | macs
    rate: float           # 0.0 for the baseline
    seed: int
    settings: dict        # the shared settings every trial of the sweep uses

    @property
    def model_label(self) -> str:
        return self.model.get("alias") or self.model["name"]

    @property
    def is_baseline(self) -> bool:
        return self.algorithm == BASELINE

    @property
    def trial_id(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> str:
        what = "baseline" if self.is_baseline else f"{self.algorithm} @ " + (
            f"{self.rate:g}" if self.target_kind == "channels" else f"{self.target_kind}={self.rate:g}")
        return f"{self.model_label} {what}"

    def to_row(self) -> dict:
        return {"trial_id": self.trial_id, "model": self.model_label, "algorithm": self.algorithm,
                "target_kind": self.target_kind, "rate": self.rate, "seed": self.seed, "spec": asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrialSpec":
        return cls(**d)


def shared_settings(cfg: SweepConfig) -> dict:
    """The settings that define what a result means; a run folder holds one set."""
    d = cfg.model_dump(mode="json", exclude=_NOT_IDENTITY)
    for key in _DATASET_NOT_IDENTITY:
        d["dataset"].pop(key, None)
    return d


def plan_trials(cfg: SweepConfig) -> list[TrialSpec]:
    settings = shared_settings(cfg)
    trials = []
    for m in cfg.models:
        model = m.model_dump(mode="json")
        if cfg.baseline:
            trials.append(TrialSpec(model, BASELINE, "channels", 0.0, cfg.seed, settings))
        for algorithm in cfg.algorithms:
            for target in cfg.rates:
                trials.append(TrialSpec(model, algorithm, target.kind, target.value, cfg.seed, settings))
    return trials
