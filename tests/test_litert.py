"""LiteRT: models converted in LiteRT's own environment (`edgeprune litert-env`: its
converter pins packages this environment keeps newer), fp32 and int8 .tflite files
timed, checked and sized here like every runtime's."""
from __future__ import annotations

import importlib.util

import pytest

from edgeprune import load_config, load_results, run_sweep
from edgeprune.errors import EdgepruneError
from edgeprune.measure.backends import litert_env
from edgeprune.measure.backends.litert import LiteRT

from conftest import sweep_config


def _why_not() -> str:
    if importlib.util.find_spec("ai_edge_litert") is None:
        return "LiteRT's interpreter is an optional extra (pip install 'edgeprune[litert]'): not installed here"
    return litert_env.missing_converter() or ""


@pytest.mark.slow
def test_litert_int8_is_converted_quantized_and_checked(tiny_cifar, tmp_path):
    if _why_not():
        pytest.skip(_why_not())
    cfg = sweep_config(tiny_cifar, tmp_path / "run", models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}],
                       baseline=False, quantize=["none", "int8"], deploy={"calibration_images": 64},
                       finetune={"epochs": 2, "max_steps": 30, "batch_size": 32, "lr": 0.05})
    cfg["measure"].update(latency=["onnxruntime", "litert"], backend_accuracy=True)
    run_sweep(load_config(cfg))
    fp32, int8 = (r for _, r in load_results(tmp_path / "run").iterrows())
    assert fp32["status"] == int8["status"] == "done", (fp32["error"], int8["error"])
    assert fp32["latency_litert_max_abs_diff"] < 1e-3 and fp32["latency_litert_top1_agreement"] == 1.0
    # int8: ai-edge-quantizer's static int8 file, fed quantized inputs, judged against its fp32 twin
    assert int8["latency_litert_ms"] > 0 and int8["latency_litert_top1_agreement"] >= 0.8
    assert abs(int8["latency_litert_accuracy"] - fp32["accuracy"]) <= 0.1
    # (a tiny CNN's int8 file is not smaller: quantization parameters outweigh its few weights)
    assert int8["latency_litert_file_bytes"] != fp32["latency_litert_file_bytes"]
    assert int8["latency_litert_vs_fp32"] > 0


def test_without_its_converter_litert_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_LITERT_ENV", str(tmp_path / "none"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "litert_torch" else real(name, *a))
    why = litert_env.missing_converter()
    assert "edgeprune litert-env" in why and str(tmp_path / "none") in why and "\n" not in why
    with pytest.raises(EdgepruneError, match="litert-env"):
        litert_env.convert({"fp32": str(tmp_path / "m.tflite")})
    if importlib.util.find_spec("ai_edge_litert") is not None:
        assert LiteRT.missing() == why
