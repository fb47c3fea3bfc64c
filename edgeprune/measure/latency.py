"""Latency of a trial's model on every configured backend, and what same-architecture
trials share.

    measure_latencies(files, backends) -> {latency_<label>_ms, latency_<label>_p90_ms, ...,
                                           latency_ms (the first backend's), arch_signature}
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

from ..errors import EdgepruneError
from .cpu_features import cpu_int8
from .timing import percentile_stats

# the figures of one backend's timing: what same-architecture trials share
TIMING = ("ms", "p90_ms", "p10_ms", "ci_rel", "iqr_ms", "ci_low_ms", "ci_high_ms", "repeats", "reference_ms", "relative")


@dataclass
class Measurement:
    median_ms: float
    p90_ms: float
    extra: dict = field(default_factory=dict)      # more metrics, stored as latency_<label>_<key>


def spread(times: list[float], info: dict) -> Measurement:
    """A Measurement of timed runs (time_calls' times and info)."""
    st = percentile_stats(times)
    extra = {"ci_rel": st["ci_rel"], "iqr_ms": st["iqr_ms"], "p10_ms": st["p10_ms"], "ci_low_ms": st["ci_low_ms"],
             "ci_high_ms": st["ci_high_ms"], "repeats": info["repeats"]}
    if "reference_median_ms" in info:
        extra["reference_ms"] = info["reference_median_ms"]
        extra["relative"] = info["relative"]
    return Measurement(st["median_ms"], st["p90_ms"], extra)


def architecture_signature(model, input_size: int) -> str:
    """The same for two models of the same architecture (module types and every
    parameter's and floating-point buffer's shape) at the same input size: what latency
    depends on. Integer buffers are left out: they are index maps (a CIFAR ResNet's
    shortcut lists the channels it carries over, 10 after one criterion, 11 after
    another, for the same layers), and a gather of one channel more is not a
    different network to time."""
    h = hashlib.sha256(f"{type(model).__name__}|{input_size}".encode())
    buffers = [(n, t) for n, t in model.named_buffers() if t.is_floating_point()]
    for name, t in list(model.named_parameters()) + buffers:
        h.update(f"{name}:{tuple(t.shape)};".encode())
    for name, m in model.named_modules():
        h.update(f"{name}={type(m).__name__};".encode())
    return h.hexdigest()[:16]


def shared_timing(metrics: dict, label: str) -> dict:
    """The timing figures of one backend in a trial's metrics (what same-architecture trials share)."""
    return {k: metrics[f"latency_{label}_{k}"] for k in TIMING if f"latency_{label}_{k}" in metrics}


def measure_latencies(files, backends: list, quantized: bool = False, known: Optional[dict] = None,
                      signature: str = "-int8") -> dict:
    """Latency on every backend: metrics latency_<label>_ms, latency_<label>_p90_ms and
    latency_<label>_<more> each, and latency_ms / latency_p90_ms / latency_threads /
    latency_backend / latency_batch_size / latency_input_size from the first that ran.
    `known` maps a backend label to timing figures already measured for this
    architecture in this run: they are used instead of timing it again. A quantized
    model's `signature` (appended to its architecture's) names what else its timing
    depends on: which layers stayed in float."""
    metrics: dict = {}
    on_host = False
    for b in backends:
        label = b.spec.label
        timing = (known or {}).get(label)
        if timing:
            m = Measurement(timing["ms"], timing["p90_ms"], {k: v for k, v in timing.items()
                                                            if k not in ("ms", "p90_ms")})
            m.extra.update(b.assess(files, quantized))
        else:
            try:
                m = b.measure(files, quantized)
            except EdgepruneError as e:
                if not quantized:
                    raise
                # a runtime that cannot make or run this int8 model: a finding of that runtime, in one
                # line; the int8 row stands on the others
                metrics[f"latency_{label}_int8_error"] = str(e)
                continue
        if m is None:
            continue
        on_host = on_host or not getattr(b, "remote", False)
        metrics[f"latency_{label}_ms"] = m.median_ms
        metrics[f"latency_{label}_p90_ms"] = m.p90_ms
        for key, value in m.extra.items():
            metrics[f"latency_{label}_{key}"] = value
        if "latency_ms" not in metrics:
            metrics.update(latency_ms=m.median_ms, latency_p90_ms=m.p90_ms, latency_threads=b.spec.threads,
                           latency_backend=label, latency_batch_size=b.spec.batch_size,
                           latency_input_size=b.size(files), latency_ci_rel=m.extra.get("ci_rel"))
            if "relative" in m.extra:
                metrics["latency_relative"] = m.extra["relative"]
    if on_host:          # the int8 instructions of the CPU those figures were timed on (a device's: its own)
        metrics["cpu_int8"] = cpu_int8()
    metrics["arch_signature"] = architecture_signature(files.model, files.input_size) + (signature if quantized else "")
    return metrics
