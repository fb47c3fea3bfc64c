"""Variants of a fine-tuned model (the `quantize:` sweep dimension): each is a row
of its own, made from its twin's model in the same task, so nothing is pruned or
fine-tuned twice.

A variant is `make(model, metrics, ctx, base, spec) -> metrics` in the variant
registry; `int8` is built in.
"""
from __future__ import annotations

import torch

from ..measure.accuracy import onnx_accuracy
from ..measure.int8_speed import speed_against_twin
from ..measure.latency import architecture_signature, measure_latencies


# the twin's metrics a variant does not inherit: it measures its own
NOT_INHERITED = ("latency_", "onnx_", "trial_seconds", "size_bytes", "accuracy", "cpu_int8", "int8_")
# (model_path: the twin's)


def int8(model, trained: dict, ctx, base, spec) -> dict:
    """onnxruntime static post-training quantization of the twin's model, calibrated on
    training images; accuracy measured in onnxruntime on the test set, size of the
    int8 file, latency on every backend that runs ONNX."""
    twin_id = spec.trained_twin().trial_id
    metrics = {k: v for k, v in trained.items() if not k.startswith(NOT_INHERITED)}
    metrics["accuracy_pruned"] = trained.get("accuracy_pruned")
    files = ctx.deploy_files(twin_id, model, base, spec.seed)
    try:
        int8_path = files.int8()
        q = files.int8_report()
        metrics.update(files.export_metrics())
        metrics.update(quantize=spec.quantize, fp32_trial_id=twin_id, accuracy_fp32=trained["accuracy"],
                       accuracy=onnx_accuracy(int8_path, ctx.loaders.test(base), threads=torch.get_num_threads()),
                       size_bytes=q.size_bytes, size_kind="int8 onnx", onnx_size_bytes=q.size_bytes,
                       size_bytes_fp32_onnx=q.fp32_size_bytes, calibration_images=q.calibration_images,
                       quantize_seconds=q.seconds)
        sig = architecture_signature(model, base.input_size) + "-int8"
        metrics.update(measure_latencies(files, ctx.latency_backends, quantized=True, known=ctx.timing.known(sig)))
        ctx.timing.unify(metrics)
        metrics.update(speed_against_twin(metrics, trained))
        kept = ctx.sink.keep_files([int8_path])
        if kept:
            metrics["onnx_path"] = kept[int8_path.name]
    finally:
        files.close()
    return metrics
