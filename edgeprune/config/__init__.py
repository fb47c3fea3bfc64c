"""Sweep configuration: a YAML file validated with pydantic, plus CLI overrides.

The config is the user's search space (models x algorithms x rates); the sweep
engine expands it into trials. Names of pluggable parts are checked against the
registries (edgeprune.registry), so this stage imports no other stage.
"""
from .errors import format_validation_error
from .load import apply_override, load_config, read_yaml
from .sections import (BASELINE, REMOTE, AllocateConfig, DatasetConfig, DeployConfig, DistillConfig, FinetuneConfig, LatencySpec,
                       MeasureConfig, ModelSpec, PruneConfig, PruneTarget, RateRange, RayConfig, TargetLayers, rate_label)
from .sweep import NO_VARIANT, SweepConfig

__all__ = ["SweepConfig", "load_config", "apply_override", "read_yaml", "format_validation_error", "ModelSpec",
           "RateRange", "PruneTarget", "PruneConfig", "TargetLayers", "DatasetConfig", "DistillConfig", "FinetuneConfig",
           "LatencySpec", "MeasureConfig", "DeployConfig", "RayConfig", "BASELINE", "NO_VARIANT", "REMOTE",
           "rate_label", "AllocateConfig"]
