"""`release_trial`: a finished trial's model as verified files, deploy.json and a model
card, in the formats asked for (formats.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..errors import EdgepruneError
from ..model_card import card_data, write_card
from ..registry import RELEASE_FORMATS
from ..run import RunFolder
from ..store import TrialRecord
from .formats import DEPLOY_FORMATS
from .inputs import ReleaseInputs, load_inputs


@dataclass
class ReleaseResult:
    trial_id: str
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)        # format (and manifest / card) -> file
    checks: dict[str, dict] = field(default_factory=dict)       # format -> what its check measured
    int8_accuracy: Optional[float] = None
    card: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class Release:
    """What a format writer gets: the model, where to write, what to check on."""
    model: nn.Module
    record: TrialRecord
    cfg: object                       # the run's SweepConfig
    size: int
    inputs: ReleaseInputs
    out: Path
    result: ReleaseResult
    formats: list[str]
    opset: Optional[int] = None
    dynamic: bool = True
    evaluate_int8: bool = True
    backend_options: dict = field(default_factory=dict)

    @property
    def int8(self) -> bool:
        return "int8" in self.formats

    def keep(self, kind: str, report) -> None:
        self.result.files[kind], self.result.checks[kind] = report.path, report.to_dict()

    def file(self, kind: str) -> Path:
        """The file of format `kind`, written first if it was not (int8 needs the fp32 ONNX)."""
        if kind not in self.result.files:
            RELEASE_FORMATS.get(kind)(self)
        return self.result.files[kind]

    def backend_spec(self, name: str):
        """The run's `measure.latency` entry for backend `name` (a TVM target, its tuning),
        with the command's options over it; the defaults where the run has none."""
        from ..config import LatencySpec, MeasureConfig
        measured = [b for b in self.cfg.measure.latency_backends() if b.backend == name]
        spec = measured[0] if measured else MeasureConfig(latency=[{"backend": name}]).latency_backends()[0]
        given = {k: v for k, v in self.backend_options.items() if v is not None} if name == "tvm" else {}
        return LatencySpec.model_validate({**spec.model_dump(exclude_none=True), **given}) if given else spec


def release_trial(run_dir, trial_id: str, out_dir=None, formats: Sequence[str] = DEPLOY_FORMATS, *,
                  data_dir: Optional[str] = None, opset: Optional[int] = None,
                  dynamic_batch: Optional[bool] = None, evaluate_int8: bool = True,
                  backend_options: Optional[dict] = None) -> ReleaseResult:
    """Write trial `trial_id` (a unique prefix will do) of the run at `run_dir` in
    `formats` into `out_dir` (default RUN/deploy/TRIAL/), each file verified, with
    deploy.json and the model card. An int8 variant is released with its int8 file.
    A runtime's file is made as the run's `measure.latency` entry for that backend
    says (a TVM target, its tuning), with `backend_options` over it."""
    from ..sweep import trial_model
    from ..config.variants import INT8_VARIANTS, variant_name
    for f in formats:
        if f not in RELEASE_FORMATS:
            raise EdgepruneError(f"unknown format {f!r}; choose from {', '.join(RELEASE_FORMATS.names())}")
    run = RunFolder(run_dir)
    record = run.find_trial(trial_id, done=True)
    cfg = run.config(data_dir=data_dir, check_data=False)
    int8_row = variant_name(record.spec.get("quantize") or "none") in INT8_VARIANTS
    formats = list(dict.fromkeys([*formats, *(["int8"] if int8_row else [])]))
    out = Path(out_dir) if out_dir else run.deploy_dir(record.trial_id)
    if out.exists() and not out.is_dir():
        raise EdgepruneError(f"output {str(out)!r} is a file; name a folder (it is created if missing)")
    inputs = load_inputs(cfg, record)
    model = trial_model(run.path, record.trial_id, data_dir=data_dir, data=inputs.data).eval()
    with torch.no_grad():
        num_classes = int(model(inputs.check[:1]).shape[-1])
    out.mkdir(parents=True, exist_ok=True)
    result = ReleaseResult(record.trial_id, out)
    release = Release(model, record, cfg, int(record.metrics.get("input_size") or 32), inputs, out, result, formats,
                      opset, cfg.deploy.dynamic_batch if dynamic_batch is None else dynamic_batch, evaluate_int8,
                      dict(backend_options or {}))
    for kind in formats:
        release.file(kind)
    _write_manifest(release, num_classes)
    card = card_data(run, record, cfg, inputs.norm, release.size, num_classes, result.files, result.checks,
                     "test images" if inputs.real else "random inputs (the data set could not be read)",
                     result.problems)
    result.card = card
    result.files["card"] = write_card(out, card, record)
    return result


def _write_manifest(r: Release, num_classes: Optional[int]) -> None:
    record, result = r.record, r.result
    manifest = {
        "trial_id": record.trial_id, "model": record.model, "algorithm": record.algorithm, "rate": record.rate,
        "target_kind": record.target_kind,
        "accuracy_fp32_torch": record.metrics.get("accuracy_fp32", record.metrics.get("accuracy")),
        "int8_accuracy_onnxruntime": result.int8_accuracy,
        "input": {"name": "input", "layout": "NCHW", "dtype": "float32", "size": r.size,
                  "batch": "dynamic" if r.dynamic else 1, "scale": "pixels / 255, then (x - mean) / std",
                  **r.inputs.norm},
        "output": {"name": "logits", "classes": num_classes},
        "files": {k: p.name for k, p in result.files.items()},
        "checks": result.checks, "checked_on": "test images" if r.inputs.real else "random inputs (no data set)",
    }
    path = result.out_dir / "deploy.json"
    path.write_text(json.dumps(manifest, indent=1, default=str))
    result.files["manifest"] = path
