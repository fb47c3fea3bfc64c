"""Latency backends: where a trial's model is converted or compiled and timed, in the
runtime the device uses (base.py: the interface). Built in: `torch` (eager),
`onnxruntime`, `openvino`, `tvm`, `litert` (this machine) and `device` (an
`edgeprune agent` on the device). Register another with
`edgeprune.plugins.register_latency_backend`."""
from ...registry import LATENCY_BACKENDS
from . import device, local, tvm_compiler  # noqa: F401  (register the built-ins)
from .base import LatencyBackend, Measurement, measure_latencies
from .device import device_summary

__all__ = ["LatencyBackend", "Measurement", "measure_latencies", "make_backends", "device_summary"]


def make_backends(specs: list) -> list[LatencyBackend]:
    """One backend object per configured spec (numbers filled in)."""
    return [LATENCY_BACKENDS.get(s.backend)(s) for s in specs]
