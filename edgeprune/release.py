"""What leaves a run: a finished trial's model as verified files plus a model card.

`edgeprune deploy RUN TRIAL` and `edgeprune recommend --export DIR` both call
`release_trial`; they differ only in the formats they ask for:

    onnx         fp32 ONNX (torch's exporter), checked in onnxruntime
    int8         int8 ONNX (onnxruntime static PTQ, calibrated on training images),
                 with its test accuracy measured in onnxruntime
    torchscript  TorchScript (torch.jit.trace), reloaded and checked
    pt2          torch.export program, reloaded and checked
    edgeprune    the model in edgeprune's code-free format (edgeprune.load_model)
    state_dict   the weights alone

Every file is checked against the trial's PyTorch model on the run's own test
images (random inputs when the data set cannot be read: the card says so); a
file that fails the check is moved aside and the release fails. The folder also
gets deploy.json (how to feed the files) and model_card.md / .json, rendered from
a template.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .config import BASELINE
from .errors import EdgepruneError, first_line
from .metrics import latency_label
from .run import RunFolder
from .store import TrialRecord

FORMATS = ("onnx", "int8", "torchscript", "pt2", "edgeprune", "state_dict", "openvino", "tvm", "litert")
RUNTIMES = ("openvino", "tvm", "litert")        # formats a latency backend makes (and checks) in its runtime
DEPLOY_FORMATS = ("onnx",)
EXPORT_FORMATS = ("pt2", "torchscript", "edgeprune", "state_dict")


@dataclass
class ReleaseResult:
    trial_id: str
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)        # format (and manifest / card) -> file
    checks: dict[str, dict] = field(default_factory=dict)       # format -> what its check measured
    int8_accuracy: Optional[float] = None
    card: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _card_template():
    from jinja2 import Environment, PackageLoader
    return Environment(loader=PackageLoader("edgeprune", "templates"), autoescape=False, trim_blocks=True,
                       lstrip_blocks=True, keep_trailing_newline=True).get_template("model_card.md.j2")


def _inputs(run: RunFolder, record: TrialRecord, data_dir: Optional[str]):
    """(test images, (calibration, test loaders) or None, normalisation, real images?) for the checks."""
    from .data import BatchLoader, check_dataset, load_dataset
    cfg = run.config(data_dir=data_dir, check_data=False)
    norm = record.metrics.get("normalization") or {}
    size = int(record.metrics.get("input_size") or 32)
    try:
        check_dataset(cfg.dataset)
        data = load_dataset(cfg.dataset, seed=cfg.seed)
    except EdgepruneError:
        return torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(0)), None, norm, False
    mean = tuple(norm.get("mean") or data.train.mean)
    std = tuple(norm.get("std") or data.train.std)
    check = next(iter(BatchLoader(data.test, cfg.deploy.parity_images, mean, std, image_size=size)))[0]
    calib = BatchLoader(data.train, 64, mean, std, shuffle=True, augment=False, image_size=size, seed=cfg.seed)
    test = BatchLoader(data.test, 500, mean, std, image_size=size)
    return check, (calib, test), {"mean": list(mean), "std": list(std)}, True


def release_trial(run_dir, trial_id: str, out_dir=None, formats: Sequence[str] = DEPLOY_FORMATS, *,
                  data_dir: Optional[str] = None, opset: Optional[int] = None,
                  dynamic_batch: Optional[bool] = None, evaluate_int8: bool = True,
                  backend_options: Optional[dict] = None) -> ReleaseResult:
    """Write trial `trial_id` (a unique prefix will do) of the run at `run_dir` in
    `formats` into `out_dir` (default RUN/deploy/TRIAL/), each file verified, with
    deploy.json and the model card. An int8 variant is released with its int8 file.
    A runtime's file is made as the run's `measure.latency` entry for that backend
    says (a TVM target, its tuning), with `backend_options` over it."""
    from .deploy.export import export_onnx, export_torchscript
    from .deploy.quantize import quantize_onnx
    from .measure.accuracy import onnx_accuracy
    from .sweep import trial_model

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise EdgepruneError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    run = RunFolder(run_dir)
    record = run.find_trial(trial_id, done=True)
    cfg = run.config(data_dir=data_dir, check_data=False)
    d = cfg.deploy
    formats = list(dict.fromkeys([*formats, *(["int8"] if record.spec.get("quantize") == "int8" else [])]))
    out = Path(out_dir) if out_dir else run.deploy_dir(record.trial_id)
    if out.exists() and not out.is_dir():
        raise EdgepruneError(f"output {str(out)!r} is a file; name a folder (it is created if missing)")
    model = trial_model(run.path, record.trial_id, data_dir=data_dir).eval()
    size = int(record.metrics.get("input_size") or 32)
    check, loaders, norm, real = _inputs(run, record, data_dir)
    with torch.no_grad():
        num_classes = int(model(check[:1]).shape[-1])
    out.mkdir(parents=True, exist_ok=True)
    result = ReleaseResult(record.trial_id, out)
    dynamic = d.dynamic_batch if dynamic_batch is None else dynamic_batch

    def keep(kind: str, report) -> None:
        result.files[kind], result.checks[kind] = report.path, report.to_dict()

    if "onnx" in formats or "int8" in formats:
        keep("onnx", export_onnx(model, out / "model.onnx", size, check_inputs=check, opset=opset or d.opset,
                                 dynamic_batch=dynamic, atol=d.parity_atol, exporter=d.exporter,
                                 check_images=d.parity_images))
    if "int8" in formats:
        if loaders is None:
            raise EdgepruneError("int8 needs the run's training images to calibrate; pass --data-dir DIR")
        q = quantize_onnx(result.files["onnx"], out / "model.int8.onnx", loaders[0],
                          calibration_images=d.calibration_images, method=d.calibration_method,
                          per_channel=d.per_channel, activation_type=d.activation_type, reduce_range=d.reduce_range)
        result.files["int8"], result.checks["int8"] = q.path, q.to_dict()
        if evaluate_int8:
            result.int8_accuracy = onnx_accuracy(q.path, loaders[1])
    if "torchscript" in formats:
        keep("torchscript", export_torchscript(model, out / "model.torchscript.pt", size, check_inputs=check,
                                               atol=d.parity_atol, check_images=d.parity_images))
    if "pt2" in formats:
        _export_program(model, out / "model.pt2", check, d.parity_atol, result)
    if "edgeprune" in formats:
        from .prune import saved
        path = out / "model.edgeprune.pt"
        path.write_bytes(saved.dumps(model, getattr(model, "edgeprune_history", []), record.spec["model"], size))
        diff = _max_diff(model, saved.loads(path.read_bytes(), str(path)), check)
        result.files["edgeprune"], result.checks["edgeprune"] = path, {"max_abs_diff": diff}
    for name in (f for f in formats if f in RUNTIMES):
        _runtime_file(name, model, size, check, loaders, cfg, out, result, int8="int8" in formats,
                      options=backend_options)
    if "state_dict" in formats:
        path = out / "state_dict.pt"
        torch.save(model.state_dict(), path)
        result.files["state_dict"] = path
    _write_manifest(result, record, size, dynamic, norm, num_classes, real)
    _write_card(result, run, record, cfg, norm, size, num_classes, real)
    return result


def _runtime_file(name: str, model: nn.Module, size: int, check: torch.Tensor, loaders, cfg, out: Path,
                  result: ReleaseResult, int8: bool = False, options: Optional[dict] = None) -> None:
    """The model in a runtime's own format (OpenVINO IR, a TVM module, .tflite), made by
    that latency backend, checked against PyTorch on the test images and its test
    accuracy measured in the runtime; with `int8`, also the runtime's own int8 model
    where it has one (OpenVINO: NNCF), checked by top-1 agreement."""
    import shutil

    from .config import MeasureConfig
    from .deploy.files import TrialArtifacts
    from .registry import LATENCY_BACKENDS
    measured = [b for b in cfg.measure.latency_backends() if b.backend == name]
    spec = measured[0] if measured else MeasureConfig(latency=[{"backend": name}]).latency_backends()[0]
    given = {k: v for k, v in (options or {}).items() if v is not None} if name == "tvm" else {}
    if given:
        spec = type(spec).model_validate({**spec.model_dump(exclude_none=True), **given})
    backend = LATENCY_BACKENDS.get(name)(spec)
    files = TrialArtifacts(model, size, cfg.deploy, "model", check_images=lambda s: check,
                           calibration=lambda s: loaders[0] if loaders else [],
                           test_batches=loaders[1] if loaders else None)
    try:
        for quantized in (False, True) if int8 and getattr(backend, "quantize", None) else (False,):
            made = backend.artifact(files, quantized)
            checks = backend.assess(files, quantized)
            kept = []
            for f in made.parent.glob(made.stem + ".*") if name == "openvino" else [made]:
                name_out = re.sub(r"\.nncf-int8(-b\d+)?", ".int8",
                                  f.name.replace(".static1", "").replace(".onnx", ""))
                shutil.copy2(f, out / name_out)
                kept.append(out / name_out)
            key = f"{name}_int8" if quantized else name
            result.files[key], result.checks[key] = kept[0], checks
    finally:
        files.close()


def _max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def _export_program(model: nn.Module, path: Path, check: torch.Tensor, atol: float, result: ReleaseResult) -> None:
    example = check[:2].contiguous()
    try:
        try:   # any batch size
            program = torch.export.export(model, (example,),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
        except Exception:  # noqa: BLE001 - a model that fixes its batch: export it for batch 1
            program = torch.export.export(model, (example[:1],))
        torch.export.save(program, path)
        loaded = torch.export.load(path).module()
        diff = _max_diff(model, loaded, check[:1])
    except Exception as e:  # noqa: BLE001 - some architectures do not export; the other formats still do
        result.problems.append(f"model.pt2 (torch.export) failed: {type(e).__name__}: {first_line(e, 200)}")
        return
    with torch.no_grad():
        scale = max(1.0, float(model(check[:1]).abs().max()))
    if not diff <= atol * scale:
        path.replace(path.with_suffix(".failed.pt2"))
        result.problems.append(f"model.pt2: output differs from the trial model by {diff:.3g}")
        return
    result.files["pt2"], result.checks["pt2"] = path, {"max_abs_diff": diff}


def _write_manifest(result: ReleaseResult, record: TrialRecord, size: int, dynamic: bool, norm: dict,
                    num_classes: Optional[int], real: bool) -> None:
    manifest = {
        "trial_id": record.trial_id, "model": record.model, "algorithm": record.algorithm, "rate": record.rate,
        "target_kind": record.target_kind,
        "accuracy_fp32_torch": record.metrics.get("accuracy_fp32", record.metrics.get("accuracy")),
        "int8_accuracy_onnxruntime": result.int8_accuracy,
        "input": {"name": "input", "layout": "NCHW", "dtype": "float32", "size": size,
                  "batch": "dynamic" if dynamic else 1, "scale": "pixels / 255, then (x - mean) / std", **norm},
        "output": {"name": "logits", "classes": num_classes},
        "files": {k: p.name for k, p in result.files.items()},
        "checks": result.checks, "checked_on": "test images" if real else "random inputs (no data set)",
    }
    path = result.out_dir / "deploy.json"
    path.write_text(json.dumps(manifest, indent=1, default=str))
    result.files["manifest"] = path


_LOAD = {"onnx": "onnxruntime.InferenceSession('{f}')", "int8": "onnxruntime.InferenceSession('{f}')",
         "torchscript": "torch.jit.load('{f}')", "pt2": "torch.export.load('{f}').module()",
         "edgeprune": "edgeprune.load_model('{f}')",
         "state_dict": "model.load_state_dict(torch.load('{f}'))  # into the pruned architecture",
         "openvino": "openvino.Core().compile_model('{f}', 'CPU')",
         "openvino_int8": "openvino.Core().compile_model('{f}', 'CPU')",
         "tvm": "tvm.relax.VirtualMachine(tvm.runtime.load_module('{f}'), tvm.cpu())",
         "litert": "ai_edge_litert.interpreter.Interpreter(model_path='{f}')"}


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def card_data(run: RunFolder, record: TrialRecord, cfg, norm: dict, size: int, num_classes: Optional[int],
              files: dict, checks: dict, checked_on: str, problems: list[str]) -> dict:
    """The model card of a finished trial, as data (model_card.json)."""
    from . import __version__
    from .results import load_results
    m, spec = record.metrics, record.spec
    settings = spec.get("settings", {})
    row = load_results(run.path).set_index("trial_id").loc[record.trial_id]
    lc = m.get("layer_channels") or {}
    model_spec = spec.get("model", {})
    weights = (f"checkpoint {model_spec['checkpoint']}" if model_spec.get("checkpoint") else
               "published pretrained weights" if model_spec.get("pretrained") else "random initialisation")
    return {
        "trial": {"id": record.trial_id, "run": str(run.path.resolve()), "sweep": cfg.name,
                  "finished_at": _dt.datetime.fromtimestamp(record.finished_at).isoformat(timespec="seconds")
                  if record.finished_at else None},
        "origin": {"model": model_spec.get("name", record.model), "label": record.model, "weights": weights,
                   "num_classes": num_classes},
        "pruning": {"algorithm": record.algorithm, "target": record.target_kind, "rate": record.rate,
                    "seed": record.seed, "layers": settings.get("target"), "round_to": settings.get("round_to"),
                    "channel_ratio": m.get("channel_ratio"), "layer_rate": m.get("layer_rate"),
                    "sparsity": m.get("sparsity"),
                    "channels_before": sum(v[0] for v in lc.values()) if lc else None,
                    "channels_after": sum(v[1] for v in lc.values()) if lc else None},
        "metrics": {"accuracy": m.get("accuracy"), "accuracy_right_after_pruning": m.get("accuracy_pruned"),
                    "baseline_accuracy": _plain(row["baseline_accuracy"]),
                    "original_accuracy_before_finetuning": m.get("base_accuracy"),
                    "params": m.get("params"), "params_original": m.get("params_base"),
                    "param_reduction": m.get("param_reduction"), "macs": m.get("macs"),
                    "macs_original": m.get("macs_base"), "mac_reduction": m.get("mac_reduction"),
                    "size_bytes": m.get("size_bytes"), "size_kind": m.get("size_kind", "pytorch module"),
                    "latency_ms": m.get("latency_ms"), "latency_p90_ms": m.get("latency_p90_ms"),
                    "latency_measured_on": latency_label(m)},
        "data": {"dataset": settings.get("dataset", {}).get("name"), "root": cfg.dataset.root,
                 **{k: v for k, v in settings.get("dataset", {}).items() if k != "name"}},
        "input": {"shape": [1, 3, size, size], "dtype": "float32", "layout": "NCHW, RGB in [0, 1], then normalised",
                  "mean": norm.get("mean"), "std": norm.get("std")},
        "finetune": {**settings.get("finetune", {}), "steps_run": m.get("finetune_steps"),
                     "epochs_run": m.get("finetune_epochs"), "seconds": m.get("finetune_seconds")},
        "files": {k: {"file": p.name, "load": _LOAD[k].format(f=p.name),
                      **({c: checks[k][c] for c in ("max_abs_diff", "top1_agreement", "accuracy")
                          if checks.get(k, {}).get(c) is not None})}
                  for k, p in files.items() if k in _LOAD},
        "checked_on": checked_on, "layer_channels": lc, "problems": problems,
        "exported_by": {"edgeprune": __version__, "torch": torch.__version__,
                        "at": _dt.datetime.now().isoformat(timespec="seconds")},
    }


def render_card(card: dict, baseline: bool) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _card_template().render(c=card, baseline=baseline)


def model_card(run: RunFolder, record: TrialRecord) -> tuple[dict, str]:
    """A finished trial's card from what the run recorded (no files, no model built)."""
    m = record.metrics
    lc = m.get("layer_channels") or {}
    card = card_data(run, record, run.config(check_data=False), m.get("normalization") or {},
                     int(m.get("input_size") or 32), int(list(lc.values())[-1][1]) if lc else None, {}, {},
                     "nothing (no files released)", [])
    return card, render_card(card, record.algorithm == BASELINE)


def _write_card(result: ReleaseResult, run: RunFolder, record: TrialRecord, cfg, norm: dict, size: int,
                num_classes: int, real: bool) -> None:
    card = card_data(run, record, cfg, norm, size, num_classes, result.files, result.checks,
                     "test images" if real else "random inputs (the data set could not be read)", result.problems)
    result.card = card
    (result.out_dir / "model_card.json").write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    (result.out_dir / "model_card.md").write_text(render_card(card, record.algorithm == BASELINE))
    result.files["card"] = result.out_dir / "model_card.md"
