"""What a sweep trial does with deployment: its ONNX (and int8) files, made on
demand and verified, and its latency on every configured backend."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..measure import measure_latency
from .agent import benchmark_onnx
from .export import ExportReport, export_onnx
from .quantize import QuantizeReport, quantize_onnx
from .remote import AgentClient


class TrialArtifacts:
    """The deployable files of one trial's model: the fp32 ONNX export (parity-checked
    on real test images) and its int8 quantization, per input size, each made once
    when first asked for, in a temporary folder that `close()` removes: STEM.onnx
    (fp32) and STEM.int8.onnx, with -SIZEpx before the suffix for other sizes than
    the trial's. `files()` lists what was made (to keep them)."""

    def __init__(self, model: nn.Module, input_size: int, deploy, stem: str, *,
                 check_images: Callable[[int], torch.Tensor],
                 calibration: Callable[[int], Iterable]):
        self.model, self.input_size, self.deploy, self.stem = model, input_size, deploy, stem
        self._check_images, self._calibration = check_images, calibration
        self.folder = Path(tempfile.mkdtemp(prefix="edgeprune-onnx-"))
        self.exports: dict[int, ExportReport] = {}
        self.quantized: dict[int, QuantizeReport] = {}

    def _name(self, size: int, suffix: str) -> Path:
        extra = "" if size == self.input_size else f"-{size}px"
        return self.folder / f"{self.stem}{extra}{suffix}"

    def onnx(self, size: Optional[int] = None) -> Path:
        """The fp32 ONNX file at `size` (default: the trial's input size)."""
        size = size or self.input_size
        if size not in self.exports:
            d = self.deploy
            self.exports[size] = export_onnx(
                self.model, self._name(size, ".onnx"), size,
                check_inputs=self._check_images(size), opset=d.opset, dynamic_batch=d.dynamic_batch,
                atol=d.parity_atol, exporter=d.exporter, check_images=d.parity_images)
        return self.exports[size].path

    def int8(self, size: Optional[int] = None) -> Path:
        """The int8 ONNX file at `size`, quantized from the fp32 one."""
        size = size or self.input_size
        if size not in self.quantized:
            d = self.deploy
            self.quantized[size] = quantize_onnx(
                self.onnx(size), self._name(size, ".int8.onnx"), self._calibration(size),
                calibration_images=d.calibration_images, method=d.calibration_method, per_channel=d.per_channel,
                activation_type=d.activation_type, reduce_range=d.reduce_range)
        return self.quantized[size].path

    def files(self) -> list[Path]:
        return [r.path for r in self.exports.values()] + [r.path for r in self.quantized.values()]

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def resized(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x.contiguous()
    return F.interpolate(x.contiguous(), size=(size, size), mode="bilinear", align_corners=False)


def device_summary(info: dict) -> str:
    board = info.get("board") or info.get("hostname") or "device"
    return (f"{board}: {info.get('cpu', '?')} x{info.get('cores', '?')}, "
            f"onnxruntime {info.get('onnxruntime', '?')}")


def measure_latencies(model: nn.Module, artifacts: Optional[TrialArtifacts], backends: list, input_size: int,
                      quantized: bool = False, clients: Optional[dict] = None) -> dict:
    """Latency of the trial's model on every backend (config LatencyBackend, numbers
    filled in): metrics latency_<label>_ms and latency_<label>_p90_ms each, and
    latency_ms / latency_p90_ms / latency_threads / latency_backend from the first
    backend that ran. An int8 model has no torch latency (torch backends are skipped)."""
    metrics: dict = {}
    clients = {} if clients is None else clients
    for b in backends:
        size = b.input_size or input_size
        if b.backend == "torch":
            if quantized:
                continue
            lat = measure_latency(model, size, threads=b.threads, warmup=b.warmup, repeats=b.repeats,
                                  batch_size=b.batch_size)
            median, p90 = lat.median_ms, lat.p90_ms
        else:
            path = artifacts.int8(size) if quantized else artifacts.onnx(size)
            if b.backend == "onnxruntime":
                r = benchmark_onnx(str(path), threads=b.threads, warmup=b.warmup, repeats=b.repeats,
                                   batch_size=b.batch_size)
            else:
                client = clients.get(b.label)
                if client is None:
                    client = clients[b.label] = AgentClient(b.device, token_env=b.token_env, timeout=b.timeout,
                                                            busy_wait=b.timeout)
                r = client.benchmark(path, threads=b.threads, warmup=b.warmup, repeats=b.repeats,
                                     batch_size=b.batch_size)
                metrics[f"latency_{b.label}_device"] = device_summary(r.get("device", {}))
                metrics[f"latency_{b.label}_info"] = r.get("device", {})
            median, p90 = r["median_ms"], r["p90_ms"]
        metrics[f"latency_{b.label}_ms"] = median
        metrics[f"latency_{b.label}_p90_ms"] = p90
        if "latency_ms" not in metrics:
            metrics.update(latency_ms=median, latency_p90_ms=p90, latency_threads=b.threads,
                           latency_backend=b.label, latency_batch_size=b.batch_size, latency_input_size=size)
    return metrics


def sweep_backends(measure, quantize: list[str]) -> list:
    """The measure section's backends for a sweep; with int8 trials, the first backend
    must run ONNX (an int8 model has no torch latency): onnxruntime is put first if
    the list has no onnxruntime or device backend, so that latency_ms compares like
    with like across fp32 and int8 trials."""
    backends = measure.latency_backends()
    if "int8" in quantize and backends:
        onnx_backends = [b for b in backends if b.backend != "torch"]
        if not onnx_backends:
            template = backends[0]
            backends = [template.model_copy(update={"backend": "onnxruntime", "name": None})] + backends
        else:
            backends = onnx_backends[:1] + [b for b in backends if b is not onnx_backends[0]]
    return backends
