"""Latency backends: where a trial's model is converted or compiled and timed, in the
runtime the device uses (base.py: the interface, checks.py: what every file is
checked for). Built in, one module each: `torch` (eager), `onnxruntime`,
`openvino`, `tvm`, `litert` (this machine) and `device` (an `edgeprune agent` on
the device); the registry imports each when it is first named. Register another
with `edgeprune.plugins.register_latency_backend`."""
from ...registry import LATENCY_BACKENDS
from .base import LatencyBackend

__all__ = ["LatencyBackend", "make_backends"]


def make_backends(specs: list) -> list[LatencyBackend]:
    """One backend object per configured spec (numbers filled in)."""
    return [LATENCY_BACKENDS.get(s.backend)(s) for s in specs]
