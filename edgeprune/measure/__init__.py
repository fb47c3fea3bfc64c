"""Measuring a model: the pipeline's stage after fine-tuning.

    evaluate(model, batches)                top-1 accuracy (accuracy.py; onnx_accuracy in ONNX Runtime)
    count_params / count_macs / model_size_bytes    what the network costs (complexity.py)
    make_backends(specs) -> [LatencyBackend]        the runtimes a device uses (backends/)
    measure_latencies(files, backends)      latency in each, paired with the unpruned model (latency.py)
    time_calls / percentile_stats           the torch-free timing core (timing.py), which the
                                            device agent's bundle carries too
    AgentClient(url).benchmark(path)        a model timed on a device's `edgeprune agent`
                                            (agent_client.py; edgeprune.agent_protocol: what both agree on)

Names are imported on first use, so that the torch-free timing core loads on a
device without torch.
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "evaluate": "accuracy", "onnx_accuracy": "accuracy",
    "count_params": "complexity", "count_macs": "complexity", "count_nonzero_params": "complexity",
    "model_size_bytes": "complexity",
    "LatencyBackend": "backends", "make_backends": "backends",
    "Measurement": "latency", "measure_latencies": "latency", "architecture_signature": "latency",
    "time_calls": "timing", "percentile_stats": "timing",
    "AgentClient": "agent_client", "AgentError": "agent_client",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
