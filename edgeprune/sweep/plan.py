"""Expanding a sweep config into trials: every model x algorithm x rate, plus one
unpruned baseline per model with the same fine-tuning (its curve's reference)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from ..config import SweepConfig

BASELINE = "none"

# Where the data lives or what the run is called does not change a result.
_NOT_IDENTITY = {"out", "name", "executor", "threads", "ray", "storage", "save_models", "device", "models", "algorithms", "rates", "baseline"}
_DATASET_NOT_IDENTITY = {"root", "download"}


@dataclass(frozen=True)
class TrialSpec:
    model: dict           # ModelSpec as a dict (name, pretrained, checkpoint, alias)
    algorithm: str        # "none" for the baseline
    target_kind: str      # channels | params | macs
    rate: float           # 0.0 for the baseline
    seed: int
    settings: dict        # the shared settings every trial of the sweep uses
    quantize: str = "none"  # none | int8 (onnxruntime static post-training quantization)

    @property
    def model_label(self) -> str:
        return self.model.get("alias") or self.model["name"]

    @property
    def is_baseline(self) -> bool:
        return self.algorithm == BASELINE

    @property
    def is_quantized(self) -> bool:
        return self.quantize != "none"

    def fp32_twin(self) -> "TrialSpec":
        """The same trial without quantization (the model an int8 trial quantizes)."""
        return replace(self, quantize="none")

    @property
    def trial_id(self) -> str:
        d = asdict(self)
        if d["quantize"] == "none":   # unquantized trials keep the ids they had before the dimension existed
            del d["quantize"]
        blob = json.dumps(d, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> str:
        what = "baseline" if self.is_baseline else f"{self.algorithm} @ " + (
            f"{self.rate:g}" if self.target_kind == "channels" else f"{self.target_kind}={self.rate:g}")
        return f"{self.model_label} {what}" + (f" {self.quantize}" if self.is_quantized else "")

    def to_row(self) -> dict:
        # an int8 trial is its own line in tables and figures: "resnet20 int8" beside "resnet20"
        label = f"{self.model_label} {self.quantize}" if self.is_quantized else self.model_label
        return {"trial_id": self.trial_id, "model": label, "algorithm": self.algorithm,
                "target_kind": self.target_kind, "rate": self.rate, "seed": self.seed, "spec": asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrialSpec":
        return cls(**d)


# Settings added after run folders existed: left out while at their defaults, so an
# older run's settings (and so its trial ids) stay the same and it still resumes.
_LATER_DEFAULTS = {("quantize",): ["none"], ("finetune", "distill"): None,
                   ("measure", "latency_batch_size"): 1, ("measure", "latency_input_size"): None}


def shared_settings(cfg: SweepConfig) -> dict:
    """The settings that define what a result means; a run folder holds one set."""
    d = cfg.model_dump(mode="json", exclude=_NOT_IDENTITY)
    for key in _DATASET_NOT_IDENTITY:
        d["dataset"].pop(key, None)
    for path, default in _LATER_DEFAULTS.items():
        *parents, key = path
        node = d
        for part in parents:
            node = node.get(part, {})
        if key in node and node[key] == default:
            del node[key]
    if "deploy" in d and d["deploy"] == type(cfg.deploy)().model_dump(mode="json"):
        del d["deploy"]
    return d


def plan_trials(cfg: SweepConfig) -> list[TrialSpec]:
    settings = shared_settings(cfg)
    trials = []
    for m in cfg.models:
        model = m.model_dump(mode="json")
        # an int8 trial comes right after its fp32 twin, whose fine-tuned model it reuses
        if cfg.baseline:
            trials += [TrialSpec(model, BASELINE, "channels", 0.0, cfg.seed, settings, q) for q in cfg.quantize]
        for algorithm in cfg.algorithms:
            for target in cfg.rates:
                trials += [TrialSpec(model, algorithm, target.kind, target.value, cfg.seed, settings, q)
                           for q in cfg.quantize]
    return trials
