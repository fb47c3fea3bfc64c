"""Measuring a model: accuracy, parameters, MACs and size. (Latency is measured in
the runtime the device uses: edgeprune.deploy.backends.)"""
from ..models.complexity import count_macs, count_nonzero_params, count_params, model_size_bytes
from .accuracy import evaluate

__all__ = ["evaluate", "count_params", "count_nonzero_params", "count_macs", "model_size_bytes"]
