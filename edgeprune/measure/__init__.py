"""Measuring a model: accuracy, parameters, MACs, size and real latency."""
from .accuracy import evaluate
from .complexity import count_macs, count_nonzero_params, count_params, model_size_bytes
from .latency import LatencyResult, measure_latency

__all__ = ["evaluate", "count_params", "count_nonzero_params", "count_macs", "model_size_bytes",
           "measure_latency", "LatencyResult"]
