"""TVM and int8: its Relax ONNX importer takes onnxruntime's QDQ int8 file (static batch)
and keeps its numerics, but computes in float; the row says so, and the honest-speed
flag compares it with the fp32 twin like every runtime's."""
from __future__ import annotations

import importlib.util

import pytest

from edgeprune import load_config, load_results, run_sweep
from edgeprune.measure.backends.tvm import INT8_COMPUTE

from conftest import sweep_config


@pytest.mark.slow
def test_tvm_runs_the_int8_file_and_says_it_computes_in_float(tiny_cifar, tmp_path):
    if importlib.util.find_spec("tvm") is None:
        pytest.skip("tvm is an optional extra (pip install 'edgeprune[tvm]'): not installed here")
    cfg = sweep_config(tiny_cifar, tmp_path / "run", models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}],
                       baseline=False, quantize=["none", "int8"], deploy={"calibration_images": 64},
                       finetune={"epochs": 2, "max_steps": 30, "batch_size": 32, "lr": 0.05},
                       # the model this was written for: rebuilt layers leave this tiny net's test logits so close
                       # that int8 flips a quarter of the parity images in onnxruntime and TVM alike
                       prune={"reconstruct": 0})
    cfg["measure"].update(latency=["onnxruntime", "tvm"], backend_accuracy=True)
    run_sweep(load_config(cfg))
    fp32, int8 = (r for _, r in load_results(tmp_path / "run").iterrows())
    assert int8["status"] == "done", int8["error"]
    assert int8["latency_tvm_ms"] > 0 and int8["latency_tvm_top1_agreement"] >= 0.8
    assert abs(int8["latency_tvm_accuracy"] - int8["latency_onnxruntime_accuracy"]) <= 0.05   # the same numerics
    assert int8["latency_tvm_int8_compute"] == INT8_COMPUTE and int8["latency_tvm_vs_fp32"] > 0
