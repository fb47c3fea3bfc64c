"""Latency backends: where a trial's model is timed, in the runtime the device uses.

A backend is a class in the latency-backend registry, made once per sweep for each
configured `measure.latency` entry (so it may hold a connection), with one method:

    measure(files, quantized) -> Measurement | None

`files` is the trial's `TrialArtifacts` (the PyTorch model, its verified ONNX
export and int8 quantization on demand); a backend that cannot run the requested
model (torch eager and an int8 ONNX file) returns None and is skipped.
Built in: `torch` (eager, this machine), `onnxruntime` (this machine) and `device`
(an `edgeprune agent` on the device). Register another with
`edgeprune.plugins.register_latency_backend`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..registry import LATENCY_BACKENDS
from ..agent.bench import benchmark_onnx, percentile_stats
from .files import TrialArtifacts


@dataclass
class Measurement:
    median_ms: float
    p90_ms: float
    extra: dict = field(default_factory=dict)      # more metrics, stored as latency_<label>_<key>


class LatencyBackend:
    """The interface; `spec` is the config's LatencyBackend with every number filled in."""
    runs_onnx: bool = True      # what it times: the ONNX export (True) or the PyTorch model

    def __init__(self, spec):
        self.spec = spec

    def size(self, files: TrialArtifacts) -> int:
        return self.spec.input_size or files.input_size

    def onnx_file(self, files: TrialArtifacts, quantized: bool):
        size = self.size(files)
        return files.int8(size) if quantized else files.onnx(size)

    def measure(self, files: TrialArtifacts, quantized: bool) -> Optional[Measurement]:
        raise NotImplementedError


@torch.inference_mode()
def time_torch(model: torch.nn.Module, input_size: int, threads: int = 1, warmup: int = 3, repeats: int = 20,
               batch_size: int = 1) -> dict:
    """Median, p90, ... of `repeats` timed eager forward passes after `warmup` untimed
    ones, with torch limited to `threads` intra-op threads (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    try:
        x = torch.randn(batch_size, 3, input_size, input_size)
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)
    return percentile_stats(times)


@LATENCY_BACKENDS.register("torch")
class TorchEager(LatencyBackend):
    """PyTorch eager on this machine's CPU (no int8: the int8 model exists as ONNX only)."""
    runs_onnx = False

    def measure(self, files, quantized):
        if quantized:
            return None
        s = self.spec
        r = time_torch(files.model, self.size(files), threads=s.threads, warmup=s.warmup, repeats=s.repeats,
                       batch_size=s.batch_size)
        return Measurement(r["median_ms"], r["p90_ms"])


@LATENCY_BACKENDS.register("onnxruntime")
class OnnxRuntime(LatencyBackend):
    """onnxruntime's CPU execution provider on this machine."""

    def measure(self, files, quantized):
        s = self.spec
        r = benchmark_onnx(str(self.onnx_file(files, quantized)), threads=s.threads, warmup=s.warmup,
                           repeats=s.repeats, batch_size=s.batch_size)
        return Measurement(r["median_ms"], r["p90_ms"])


@LATENCY_BACKENDS.register("device")
class Device(LatencyBackend):
    """An `edgeprune agent` on the device: the ONNX file is uploaded and timed there."""

    def __init__(self, spec):
        super().__init__(spec)
        from .remote import AgentClient
        self.client = AgentClient(spec.device, token_env=spec.token_env, timeout=spec.timeout,
                                  busy_wait=spec.timeout)

    def measure(self, files, quantized):
        s = self.spec
        r = self.client.benchmark(self.onnx_file(files, quantized), threads=s.threads, warmup=s.warmup,
                                  repeats=s.repeats, batch_size=s.batch_size)
        info = r.get("device", {})
        return Measurement(r["median_ms"], r["p90_ms"], {"device": device_summary(info), "info": info})


for _alias, _name in (("eager", "torch"), ("pytorch", "torch"), ("ort", "onnxruntime"), ("onnx", "onnxruntime")):
    LATENCY_BACKENDS.alias(_alias, _name)


def device_summary(info: dict) -> str:
    board = info.get("board") or info.get("hostname") or "device"
    return (f"{board}: {info.get('cpu', '?')} x{info.get('cores', '?')}, "
            f"onnxruntime {info.get('onnxruntime', '?')}")


def make_backends(specs: list) -> list[LatencyBackend]:
    """One backend object per configured spec (numbers filled in)."""
    return [LATENCY_BACKENDS.get(s.backend)(s) for s in specs]


def measure_latencies(files: TrialArtifacts, backends: list[LatencyBackend], quantized: bool = False) -> dict:
    """Latency on every backend: metrics latency_<label>_ms and latency_<label>_p90_ms
    each, and latency_ms / latency_p90_ms / latency_threads / latency_backend /
    latency_batch_size / latency_input_size from the first backend that ran."""
    metrics: dict = {}
    for b in backends:
        m = b.measure(files, quantized)
        if m is None:
            continue
        label = b.spec.label
        metrics[f"latency_{label}_ms"] = m.median_ms
        metrics[f"latency_{label}_p90_ms"] = m.p90_ms
        for key, value in m.extra.items():
            metrics[f"latency_{label}_{key}"] = value
        if "latency_ms" not in metrics:
            metrics.update(latency_ms=m.median_ms, latency_p90_ms=m.p90_ms, latency_threads=b.spec.threads,
                           latency_backend=label, latency_batch_size=b.spec.batch_size,
                           latency_input_size=b.size(files))
    return metrics
