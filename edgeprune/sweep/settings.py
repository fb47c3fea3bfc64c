"""A trial's settings: what every trial of a sweep shares and what defines its
result, in one typed, frozen object whose JSON (`identity`) is what trial ids hash.

    settings = TrialSettings.from_config(cfg)        # a sweep's
    settings = TrialSettings.from_identity(stored)   # a stored trial's (older run folders too)
    settings.identity                                # the JSON: hashed into trial ids, kept in results.db
    settings.finetune.lr, settings.measure, ...      # the typed sections a trial runs with

Run folders resume by trial id, so the identity rule is versioned (store.IDENTITY_VERSION)
and guarded by a golden test (tests/test_identity.py): settings added after run
folders existed are left out of the identity while at the value that reproduces what
those runs did (OLD_BEHAVIOUR), and put back when a trial runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from ..config.variants import INT8_VARIANTS, variant_name
from ..config import (NO_VARIANT, AllocateConfig, DatasetConfig, DeployConfig, FinetuneConfig, MeasureConfig, PruneConfig,
                      SweepConfig, TargetLayers)

# What the run is called, where its data and artefacts live and how trials are
# scheduled do not change a result.
_NOT_IDENTITY = {"out", "name", "executor", "threads", "ray", "storage", "save_models", "device", "models",
                 "algorithms", "rates", "baseline", "plugins", "weights_dir", "allocation", "search"}
_NESTED_NOT_IDENTITY = {("dataset", "root"), ("dataset", "download"), ("prune", "timeout_s")}
# Settings added after run folders existed, with the value that reproduces what runs
# did before: left out of the identity at that value, so an older run's settings (and
# so its trial ids) stay the same and it still resumes. Where the new default is
# another value, a resumed older run keeps the old one (adopt_stored).
OLD_BEHAVIOUR = {("quantize",): [NO_VARIANT], ("finetune", "distill"): None,
                 ("measure", "latency_batch_size"): 1, ("measure", "latency_input_size"): None,
                 ("dataset", "options"): {}, ("dataset", "skip_bad_images"): False, ("prune", "recalibrate_bn"): 0,
                 ("strategy",): "independent", ("measure", "latency_ci"): None, ("measure", "latency_max_repeats"): None,
                 ("measure", "backend_accuracy"): False, ("measure", "latency_reference"): False,
                 ("measure", "latency_min_seconds"): 0.0, ("prune", "reconstruct"): 0,
                 ("prune", "recovery"): "lstsq", ("prune", "reconstruct_from"): "train"}
# ... and the same for each entry of measure.latency (a list of backends)
OLD_BACKEND_BEHAVIOUR = {"runtime": None, "target": None, "max_repeats": None, "ci": None, "rpc": None,
                         "tune_trials": None, "min_seconds": None}
# how a device agent is reached securely changes no figure
_BACKEND_NOT_IDENTITY = ("tls_fingerprint", "ca_file")


@dataclass(frozen=True)
class TrialSettings:
    identity: dict                # the JSON form: hashed into trial ids, stored in results.db
    target: TargetLayers
    prune: PruneConfig
    dataset: DatasetConfig        # how images are fed (its root is not part of a result)
    finetune: FinetuneConfig      # amp: what `precision` says, whatever the machine
    measure: MeasureConfig
    deploy: DeployConfig
    quantize: tuple[str, ...]
    strategy: str
    round_to: Optional[int]
    seed: int
    precision: str                # fp32 | bf16: the numerics fine-tuning uses
    allocate: AllocateConfig = field(default_factory=AllocateConfig)   # how layer-wise allocations are made

    @classmethod
    def from_config(cls, cfg: SweepConfig) -> "TrialSettings":
        return cls.from_identity(identity_of(cfg))

    @classmethod
    def from_identity(cls, identity: dict) -> "TrialSettings":
        """The settings a stored identity means, with what it leaves out at its old value."""
        full = with_old_behaviour(identity)
        precision = full.get("precision", "fp32")
        return cls(identity=json.loads(json.dumps(identity)), target=TargetLayers(**full.get("target", {})),
                   prune=PruneConfig(**full["prune"]), dataset=DatasetConfig(**full["dataset"]),
                   finetune=FinetuneConfig(**full["finetune"]).model_copy(
                       update={"amp": "bf16" if precision == "bf16" else "off"}),
                   measure=MeasureConfig(**full["measure"]), deploy=DeployConfig(**full.get("deploy", {})),
                   quantize=tuple(full["quantize"]), strategy=full["strategy"], round_to=full.get("round_to"),
                   seed=full.get("seed", 0), precision=precision, allocate=AllocateConfig(**full.get("allocate", {})))

    @property
    def key(self) -> str:
        """One string per distinct settings (what a worker caches its context by)."""
        return json.dumps(self.identity, sort_keys=True)

    def latency_specs(self) -> list:
        """The measure section's backends; with int8 variants, the first must run ONNX (an
        int8 model has no torch latency): onnxruntime is put first if no backend runs
        ONNX, so that latency_ms compares like with like across fp32 and int8 trials."""
        from ..registry import LATENCY_BACKENDS
        specs = self.measure.latency_backends() if self.measure.latency else []
        if any(variant_name(q) in INT8_VARIANTS for q in self.quantize) and specs:
            onnx = [s for s in specs if LATENCY_BACKENDS.get(s.backend).runs_onnx]
            if not onnx:
                specs = [specs[0].model_copy(update={"backend": "onnxruntime", "name": None})] + specs
            else:
                specs = onnx[:1] + [s for s in specs if s is not onnx[0]]
        return specs


def resolved_precision(cfg: SweepConfig) -> str:
    """The numerics fine-tuning will use: bf16 autocast (asked for, or `auto` on a
    GPU) or fp32. Part of a trial's identity: results in bf16 are other results."""
    amp = cfg.finetune.amp
    if amp != "auto":
        return "bf16" if amp == "bf16" else "fp32"
    if cfg.device == "cpu":
        return "fp32"
    if cfg.executor == "ray":
        return "bf16" if cfg.ray.gpus_per_trial > 0 else "fp32"
    import torch
    return "bf16" if cfg.device == "cuda" or torch.cuda.is_available() else "fp32"


def identity_of(cfg: SweepConfig) -> dict:
    """The settings that define what a result means, as JSON; a run folder holds one set."""
    d = cfg.model_dump(mode="json", exclude=_NOT_IDENTITY)
    for section, key in _NESTED_NOT_IDENTITY:
        d[section].pop(key, None)
    for path, old in OLD_BEHAVIOUR.items():
        *parents, key = path
        node = d
        for part in parents:
            node = node.get(part, {})
        if key in node and node[key] == old:
            del node[key]
    if d.get("prune") == {}:
        del d["prune"]
    for entry in d["measure"]["latency"] if isinstance(d["measure"].get("latency"), list) else []:
        for key in _BACKEND_NOT_IDENTITY:
            entry.pop(key, None)
        for key, old in OLD_BACKEND_BEHAVIOUR.items():
            if key in entry and entry[key] == old:
                del entry[key]
    for section in ("deploy", "allocate"):      # sections added after run folders existed: in it only when set
        if section in d and d[section] == type(getattr(cfg, section))().model_dump(mode="json"):
            del d[section]
    if resolved_precision(cfg) != "fp32":     # fp32 runs keep the ids they had before precision was recorded
        d["precision"] = resolved_precision(cfg)
    return d


shared_settings = identity_of      # the name tests and scripts of 0.2 know


def with_old_behaviour(identity: dict) -> dict:
    """`identity` with every key it leaves out at its old value put back: what a trial
    must run with (settings of old and new run folders alike)."""
    out = json.loads(json.dumps(identity))
    for path, old in OLD_BEHAVIOUR.items():
        *parents, key = path
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(key, old)
    return out


def adopt_stored(cfg: SweepConfig, stored: Optional[dict]) -> tuple[SweepConfig, list[str]]:
    """A run folder made before a setting existed resumes with the behaviour it was
    made with: for each such setting the config leaves at its default, the old value
    is used (and said). Settings the config sets on purpose are kept (and then the
    folder refuses them as other settings)."""
    if stored is None:
        return cfg, []
    notes = []
    for path, old in OLD_BEHAVIOUR.items():
        *parents, key = path
        node, section = stored, cfg
        for part in parents:
            node, section = node.get(part, {}) if isinstance(node, dict) else {}, getattr(section, part)
        if key in node or key in section.model_fields_set or getattr(section, key) == old:
            continue
        section.__dict__[key] = old
        notes.append(f"{'.'.join(path)}: {old!r} (this run folder predates the setting; its trials keep "
                     "what they did)")
    return cfg, notes
