"""quantize: [qat]: the fine-tuned model fine-tuned further with fake quantization
(PyTorch's PT2E flow), exported as QDQ int8 ONNX and measured like int8; it starts
from its twin's model (nothing trains twice: the counting optimizer of
tests/counting_plugin.py) and resumes like every variant."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import edgeprune.registry as registry
from edgeprune import load_config, load_results, run_sweep
from edgeprune.cli import main
from edgeprune.errors import ConfigError, EdgepruneError

from conftest import sweep_config

HAVE_QAT = all(importlib.util.find_spec(m) for m in ("torchao", "onnxscript"))
needs_qat = pytest.mark.skipif(not HAVE_QAT, reason="QAT needs its extra (pip install 'edgeprune[qat]': torchao, "
                                                    "onnxscript): not installed here")


@pytest.fixture
def counted(tmp_path, monkeypatch):
    path = tmp_path / "finetunes.txt"
    monkeypatch.setenv("EDGEPRUNE_COUNT_FILE", str(path))
    return lambda: len(path.read_text().splitlines()) if path.exists() else 0


def _cfg(data, out, **kw):
    kw.setdefault("quantize", ["none", {"qat": {"steps": 3}}])
    return sweep_config(data, out, rates=[0.5], plugins=["counting_plugin"], baseline=False,
                        models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}],
                        finetune={"epochs": 1, "max_steps": 2, "batch_size": 32, "optimizer": "counting_sgd"},
                        measure={"latency": ["onnxruntime"], "latency_repeats": 2, "latency_warmup": 1,
                                 "eval_batch_size": 100, "latency_min_seconds": 0},
                        deploy={"calibration_images": 32, "save_onnx": True}, **kw)


@needs_qat
@pytest.mark.slow
def test_qat_rows_train_once_from_their_twin_and_resume(tiny_cifar, tmp_path, counted, monkeypatch,
                                                        executor="local"):
    """(On Ray the variant runs in the same task as its twin, as int8 does: tests/test_no_repeated_work.py.
    Each QAT row costs ~15 s of torchao's convert_pt2e here (it traces 96 conv-BN patterns), so one row.)"""
    real = registry.VARIANTS.get("qat")
    failures = []

    def qat_fails_once(*args):
        if not failures:
            failures.append(1)
            raise RuntimeError("the QAT run was interrupted")
        return real(*args)

    if executor == "local":
        monkeypatch.setitem(registry.VARIANTS._items, "qat", qat_fails_once)
    cfg = load_config(_cfg(tiny_cifar, tmp_path / "run", executor=executor, ray={"num_cpus": 2}))
    run_sweep(cfg)
    df = load_results(tmp_path / "run")
    qat = df[df["model"].str.endswith("qat(steps=3)")]
    if executor == "local":        # one QAT row failed (its QAT never trained): the twin kept its model for it
        assert counted() == 1 and (df["status"] == "failed").sum() == 1
        run_sweep(cfg, retry_failed=True)
        df = load_results(tmp_path / "run")
        qat = df[df["model"].str.endswith("qat(steps=3)")]
    # 1 fine-tune (l1) and 1 QAT run (the retry): the twin was not fine-tuned again
    assert (df["status"] == "done").all(), df["error"].tolist()
    assert counted() == 2 and len(qat) == 1
    fp32 = df.set_index("trial_id")
    assert (qat["fp32_trial_id"].map(fp32["accuracy"]) == qat["accuracy_fp32"]).all()
    assert (qat["qat_steps"] == 3).all() and (qat["qat_export_top1_agreement"] >= 0.9).all()
    assert (qat["latency_onnxruntime_ms"] > 0).all() and (qat["size_bytes"] > 0).all()
    assert qat["int8_vs_fp32"].notna().all() and (qat["calibration_images"] == 32).all()
    # `deploy` of a QAT row writes the int8 file QAT made (kept with deploy.save_onnx), not a new PTQ one
    out = tmp_path / "release"
    assert main(["deploy", str(tmp_path / "run"), qat.iloc[-1]["trial_id"][:8], "-o", str(out)]) == 0
    assert (out / "model.int8.onnx").read_bytes() == Path(qat.iloc[-1]["onnx_path"]).read_bytes()
    manifest = json.loads((out / "deploy.json").read_text())
    assert manifest["checks"]["int8"]["method"] == "qat" and manifest["int8_accuracy_onnxruntime"] >= 0


def test_qat_is_refused_where_it_cannot_run(tiny_cifar, tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(tiny_cifar, tmp_path / "run", algorithms=["unstructured_l1"]))
    assert "\n" not in str(e.value) and "qat" in str(e.value) and "unstructured_l1" in str(e.value)
    with pytest.raises(ConfigError, match="steps"):
        load_config(_cfg(tiny_cifar, tmp_path / "run", quantize=[{"qat": {"steps": 0}}]))
    # without its packages: one line naming the extra, before anything is written
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torchao", "onnxscript") else real(name, *a))
    with pytest.raises(EdgepruneError) as e:
        run_sweep(load_config(_cfg(tiny_cifar, tmp_path / "run")))
    assert str(e.value) == "quantize: qat needs torchao and onnxscript: pip install 'edgeprune[qat]'"
    assert not (tmp_path / "run").exists()
