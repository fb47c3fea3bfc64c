"""Deployment files: verified ONNX / TorchScript export and int8 quantization of a
model. This stage knows models and files; measuring them in a runtime is
edgeprune.measure, and what leaves a run folder is edgeprune.release.

    from edgeprune.deploy import export_onnx, quantize_onnx
    report = export_onnx(model, "model.onnx", 32, check_inputs=test_images)   # raises ExportError on mismatch
    quantize_onnx("model.onnx", "model.int8.onnx", calibration_batches)

Names are imported on first use: `onnx_session` needs neither torch nor the rest
of edgeprune (the device agent carries it).
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "export_onnx": "export", "export_torchscript": "export", "ExportReport": "export", "ExportError": "export",
    "onnx_predict": "export",
    "quantize_onnx": "quantize", "QuantizeReport": "quantize", "QuantizeError": "quantize",
    "make_session": "onnx_session",
    "TrialArtifacts": "files",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
