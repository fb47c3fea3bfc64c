"""Deployment: verified ONNX / TorchScript export, int8 quantization, latency
backends (torch, onnxruntime, the device agent, plugins'), and the device agent.
This stage knows models and files, not run folders (edgeprune.release does).

    from edgeprune.deploy import export_onnx, quantize_onnx, AgentClient
    report = export_onnx(model, "model.onnx", 32, check_inputs=test_images)   # raises ExportError on mismatch
    quantize_onnx("model.onnx", "model.int8.onnx", calibration_batches)
    AgentClient("http://pi:8787").benchmark("model.int8.onnx", threads=4)["median_ms"]

Names are imported on first use: `.remote` (the agent's client) needs neither
torch nor the rest of edgeprune. The agent itself is edgeprune.agent.
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "export_onnx": "export", "export_torchscript": "export", "ExportReport": "export", "ExportError": "export",
    "onnx_predict": "export",
    "quantize_onnx": "quantize", "QuantizeReport": "quantize", "QuantizeError": "quantize",
    "onnx_accuracy": "quantize",
    "AgentClient": "remote", "AgentError": "remote",
    "TrialArtifacts": "files", "measure_latencies": "backends", "LatencyBackend": "backends",
    "Measurement": "backends",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
