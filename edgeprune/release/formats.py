"""Release formats: a registry of `name -> writer(release)`, each writing one file (or
a runtime's files) into the release folder and checking it against the trial's
PyTorch model, all by one parity rule (deploy.export.tolerance: `parity_atol` for
logits up to 1, relative beyond).

    onnx         fp32 ONNX, checked in onnxruntime
    int8         int8 ONNX (onnxruntime static PTQ), its test accuracy in onnxruntime
    torchscript  TorchScript (torch.jit.trace), reloaded and checked
    pt2          torch.export program, reloaded and checked (a model that does not
                 export is a problem noted on the card, not a failure)
    edgeprune    edgeprune's code-free format (edgeprune.load_model), reloaded and checked
    state_dict   the weights alone
    openvino, tvm, litert   the runtime's own file, made by that latency backend as the
                 run's `measure.latency` entry says, checked and its accuracy measured in
                 the runtime (with int8: the runtime's own int8 model where it has one)

A plugin adds one with `edgeprune.plugins.register_release_format`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..deploy.export import export_onnx, export_torchscript, tolerance
from ..errors import EdgepruneError, first_line
from ..registry import RELEASE_FORMATS

DEPLOY_FORMATS = ("onnx",)                                          # `edgeprune deploy` with no format named
EXPORT_FORMATS = ("pt2", "torchscript", "edgeprune", "state_dict")  # `recommend --export`
RUNTIMES = ("openvino", "tvm", "litert")


def parity(model: nn.Module, loaded, check: torch.Tensor, atol: float) -> tuple[bool, float]:
    """(within the tolerance?, max |loaded - model|) on the check images."""
    with torch.no_grad():
        reference = model(check).float()
        diff = float((loaded(check).float() - reference).abs().max())
    return diff <= tolerance(atol, reference.numpy()), diff


@RELEASE_FORMATS.register("onnx")
def onnx(r) -> None:
    d = r.cfg.deploy
    r.keep("onnx", export_onnx(r.model, r.out / "model.onnx", r.size, check_inputs=r.inputs.check,
                               opset=r.opset or d.opset, dynamic_batch=r.dynamic, atol=d.parity_atol,
                               exporter=d.exporter, check_images=d.parity_images))


@RELEASE_FORMATS.register("int8")
def int8(r) -> None:
    from ..deploy.quantize import quantize_onnx
    from ..measure.accuracy import onnx_accuracy
    from ..config.variants import variant_name
    if variant_name(r.record.spec.get("quantize") or "none") == "qat":
        _qat_int8(r)
        return
    r.inputs.need_calibration()
    fp32 = r.file("onnx")
    d = r.cfg.deploy
    # an accuracy-controlled trial's layers that stayed in float stay in float here too
    kept_float = [n for n in (r.record.metrics.get("float_layers") or "").split(", ") if n]
    q = quantize_onnx(fp32, r.out / "model.int8.onnx", r.inputs.calibration, calibration_images=d.calibration_images,
                      method=d.calibration_method, per_channel=d.per_channel, activation_type=d.activation_type,
                      reduce_range=d.reduce_range, exclude=kept_float)
    r.result.files["int8"], r.result.checks["int8"] = q.path, q.to_dict()
    if r.evaluate_int8:
        r.result.int8_accuracy = onnx_accuracy(q.path, r.inputs.test)


def _qat_int8(r) -> None:
    """A QAT row's int8 file is the one its quantization-aware fine-tuning made (the run
    keeps it with deploy.save_onnx); quantizing its twin's model again would not be it."""
    from ..deploy.export import onnx_predict
    from ..deploy.onnx_session import make_session
    from ..measure.accuracy import onnx_accuracy
    from ..artifacts import exists, read_bytes
    kept = r.record.metrics.get("onnx_path")
    if not kept or not exists(kept):
        raise EdgepruneError(f"trial {r.record.trial_id[:8]} is a qat row: its int8 file is the one QAT made, which "
                             "the run keeps only with deploy.save_onnx: true (rerun it with that setting)")
    out = r.out / "model.int8.onnx"
    out.write_bytes(read_bytes(kept))
    session = make_session(str(out), 1)
    with torch.no_grad():
        reference = r.model(r.inputs.check).float().numpy()
    got = np.concatenate([onnx_predict(session, r.inputs.check[i:i + 1].numpy()) for i in range(len(r.inputs.check))])
    r.result.files["int8"] = out
    r.result.checks["int8"] = {"path": str(out), "size_bytes": out.stat().st_size, "method": "qat",
                               "fp32_size_bytes": r.file("onnx").stat().st_size,
                               "top1_agreement_with_fp32_twin": float((got.argmax(1) == reference.argmax(1)).mean())}
    if r.evaluate_int8:
        r.result.int8_accuracy = onnx_accuracy(out, r.inputs.test)


@RELEASE_FORMATS.register("torchscript")
def torchscript(r) -> None:
    d = r.cfg.deploy
    r.keep("torchscript", export_torchscript(r.model, r.out / "model.torchscript.pt", r.size,
                                             check_inputs=r.inputs.check, atol=d.parity_atol,
                                             check_images=d.parity_images))


@RELEASE_FORMATS.register("pt2")
def pt2(r) -> None:
    path, check = r.out / "model.pt2", r.inputs.check
    try:
        try:   # any batch size
            program = torch.export.export(r.model, (check[:2].contiguous(),),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
        except Exception:  # noqa: BLE001 - a model that fixes its batch: export it for batch 1
            program = torch.export.export(r.model, (check[:1].contiguous(),))
        torch.export.save(program, path)
        ok, diff = parity(r.model, torch.export.load(path).module(), check[:1], r.cfg.deploy.parity_atol)
    except Exception as e:  # noqa: BLE001 - some architectures do not export; the other formats still do
        r.result.problems.append(f"model.pt2 (torch.export) failed: {type(e).__name__}: {first_line(e, 200)}")
        return
    if not ok:
        path.replace(path.with_suffix(".failed.pt2"))
        r.result.problems.append(f"model.pt2: output differs from the trial model by {diff:.3g}")
        return
    r.result.files["pt2"], r.result.checks["pt2"] = path, {"max_abs_diff": diff}


@RELEASE_FORMATS.register("edgeprune")
def edgeprune_file(r) -> None:
    from ..prune import saved
    path = r.out / "model.edgeprune.pt"
    path.write_bytes(saved.dumps(r.model, getattr(r.model, "edgeprune_history", []), r.record.spec["model"], r.size))
    _, diff = parity(r.model, saved.loads(path.read_bytes(), str(path)), r.inputs.check, r.cfg.deploy.parity_atol)
    r.result.files["edgeprune"], r.result.checks["edgeprune"] = path, {"max_abs_diff": diff}


@RELEASE_FORMATS.register("state_dict")
def state_dict(r) -> None:
    path = r.out / "state_dict.pt"
    torch.save(r.model.state_dict(), path)
    r.result.files["state_dict"] = path


def runtime_file(name: str):
    """The writer of a runtime's own file(s), made and checked by its latency backend."""
    def write(r) -> None:
        from ..deploy.files import TrialArtifacts
        from ..registry import LATENCY_BACKENDS
        backend = LATENCY_BACKENDS.get(name)(r.backend_spec(name))
        inputs = r.inputs
        files = TrialArtifacts(r.model, r.size, r.cfg.deploy, "model", check_images=lambda s: inputs.check,
                               calibration=lambda s: inputs.calibration or [], test_batches=inputs.test)
        try:
            for quantized in (False, True) if r.int8 and backend.offers_int8 else (False,):
                made = backend.artifact(files, quantized)
                checks = backend.assess(files, quantized)
                tag = f"{backend.release_tag}{'.int8' if quantized else ''}"
                kept = [Path(shutil.copy2(f, r.out / f"model.{tag}{f.suffix}")) for f in backend.stored_files(made)]
                key = f"{name}_int8" if quantized else name
                r.result.files[key], r.result.checks[key] = kept[0], checks
        finally:
            files.close()
    return write


for _runtime in RUNTIMES:
    RELEASE_FORMATS.add(_runtime, runtime_file(_runtime))
