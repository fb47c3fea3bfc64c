"""`edgeprune deploy RUN TRIAL`: a finished trial's model as verified deployable
files (ONNX, int8 ONNX, TorchScript) plus a manifest of how to feed them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ..errors import EdgepruneError
from .export import ExportReport, export_onnx, export_torchscript
from .quantize import QuantizeReport, onnx_accuracy, quantize_onnx


@dataclass
class DeployResult:
    trial_id: str
    files: dict[str, Path] = field(default_factory=dict)          # onnx | int8 | torchscript | manifest
    exports: dict[str, ExportReport] = field(default_factory=dict)
    quantized: Optional[QuantizeReport] = None
    int8_accuracy: Optional[float] = None
    manifest: dict = field(default_factory=dict)


def deploy_trial(run_dir, trial_id: str, out_dir=None, *, onnx: bool = True, int8: bool = False,
                 torchscript: bool = False, data_dir: Optional[str] = None, opset: Optional[int] = None,
                 dynamic_batch: Optional[bool] = None, evaluate_int8: bool = True) -> DeployResult:
    """Export trial `trial_id` (a prefix will do) of the run at `run_dir` into `out_dir`
    (default RUN/deploy/TRIAL/). Every file is checked against the PyTorch model on the
    run's own test images (ExportError if it does not match); an int8 trial, or
    `int8=True`, also writes the int8 ONNX model, calibrated on the run's training
    images, and measures its test accuracy in onnxruntime."""
    from ..config import load_config
    from ..data import BatchLoader, load_dataset, resolve_normalization
    from ..store import ResultStore
    from ..sweep.rebuild import trial_model

    run_dir = Path(run_dir)
    with ResultStore(run_dir, create=False) as store:
        matches = [t for t in store.trials() if t.trial_id.startswith(trial_id)]
    if len(matches) != 1:
        raise EdgepruneError(f"{'no' if not matches else 'more than one'} trial {trial_id!r} in {str(run_dir)!r}; "
                             "`edgeprune show` lists them")
    record = matches[0]
    if record.status != "done":
        raise EdgepruneError(f"trial {record.trial_id} is {record.status}; only finished trials are deployed")
    cfg = load_config(yaml.safe_load((run_dir / "config.yaml").read_text()), data_dir=data_dir)
    d = cfg.deploy
    opset = opset or d.opset
    dynamic_batch = d.dynamic_batch if dynamic_batch is None else dynamic_batch
    int8 = int8 or record.spec.get("quantize", "none") == "int8"
    model = trial_model(run_dir, record.trial_id, data_dir=data_dir)
    data = load_dataset(cfg.dataset, seed=cfg.seed)
    meta = getattr(model, "edgeprune_meta", {})
    mean, std = resolve_normalization(cfg.dataset.normalization, meta, data.train)
    size = int(record.metrics.get("input_size") or data.train.image_size)
    check = next(iter(BatchLoader(data.test, d.parity_images, mean, std, image_size=size)))[0]

    out = Path(out_dir) if out_dir else run_dir / "deploy" / record.trial_id
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{record.model.replace(' ', '-')}-{record.algorithm}-{record.rate:g}".replace("/", "_").replace(":", "_")
    result = DeployResult(record.trial_id)
    if onnx or int8:
        rep = export_onnx(model, out / f"{stem}.onnx", size, check_inputs=check, opset=opset,
                          dynamic_batch=dynamic_batch, atol=d.parity_atol, exporter=d.exporter,
                          check_images=d.parity_images)
        result.exports["onnx"], result.files["onnx"] = rep, rep.path
    if int8:
        calibration = BatchLoader(data.train, 64, mean, std, shuffle=True, augment=False, image_size=size,
                                  seed=cfg.seed)
        q = quantize_onnx(result.files["onnx"], out / f"{stem}.int8.onnx", calibration,
                          calibration_images=d.calibration_images, method=d.calibration_method,
                          per_channel=d.per_channel, activation_type=d.activation_type, reduce_range=d.reduce_range)
        result.quantized, result.files["int8"] = q, q.path
        if evaluate_int8:
            result.int8_accuracy = onnx_accuracy(q.path, BatchLoader(data.test, 500, mean, std, image_size=size))
    if torchscript:
        rep = export_torchscript(model, out / f"{stem}.torchscript.pt", size, check_inputs=check,
                                 atol=d.parity_atol, check_images=d.parity_images)
        result.exports["torchscript"], result.files["torchscript"] = rep, rep.path
    result.manifest = {
        "trial_id": record.trial_id, "model": record.model, "algorithm": record.algorithm, "rate": record.rate,
        "target_kind": record.target_kind, "accuracy_fp32_torch": record.metrics.get("accuracy_fp32",
                                                                                     record.metrics.get("accuracy")),
        "int8_accuracy_onnxruntime": result.int8_accuracy,
        "input": {"name": "input", "layout": "NCHW", "dtype": "float32", "size": size,
                  "batch": "dynamic" if dynamic_batch else 1, "scale": "pixels / 255, then (x - mean) / std",
                  "mean": list(mean), "std": list(std)},
        "output": {"name": "logits", "classes": data.num_classes},
        "files": {k: p.name for k, p in result.files.items()},
        "checks": {k: r.to_dict() for k, r in result.exports.items()},
        "quantization": result.quantized.to_dict() if result.quantized else None,
    }
    manifest = out / "deploy.json"
    manifest.write_text(json.dumps(result.manifest, indent=1, default=str))
    result.files["manifest"] = manifest
    return result
