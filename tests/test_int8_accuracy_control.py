"""int8 with a tolerance (quantize: [{int8: {max_drop: 0.3}}]): equalisation and bias
correction first, then the layers that lose the most stay in float until the drop on
held-out images holds; onnxruntime (edgeprune's own loop) and OpenVINO (NNCF's)."""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from edgeprune import load_config, run_sweep
from edgeprune.config import DeployConfig, LatencySpec
from edgeprune.deploy import export_onnx
from edgeprune.deploy.accuracy_control import quantize_with_accuracy_control, weight_layers
from edgeprune.deploy.equalize import equalize
from edgeprune.deploy.files import TrialArtifacts
from edgeprune.errors import ConfigError
from edgeprune.store import ResultStore
from edgeprune.sweep import plan_trials

from conftest import sweep_config
from tiny_models import tiny_cnn

SIDE = 16


def _images(n: int, seed: int):
    """Images whose class is their colour tint (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    tint = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    y = rng.integers(0, 10, n)
    x = rng.standard_normal((n, 3, SIDE, SIDE)).astype(np.float32) * 0.5 + tint[y][:, :, None, None]
    return torch.from_numpy(x), torch.from_numpy(y)


def _trained(net: nn.Module) -> nn.Module:
    x, y = _images(512, 1)
    opt = torch.optim.Adam(net.parameters(), 0.02)
    for _ in range(60):
        i = torch.randint(0, 512, (64,))
        loss = nn.functional.cross_entropy(net(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _hostile(net: nn.Module) -> nn.Module:
    """int8_hostile_cnn's construction, applied after training."""
    with torch.no_grad():
        net[3].weight[15], net[3].bias[15], net[4].running_mean[15], net[4].bias[15] = 0, 0, 0, -1.0
        net[8].weight[:, 15] = 1e4
    return net


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    benign = _trained(tiny_cnn())
    torch.manual_seed(0)
    return benign, _hostile(_trained(tiny_cnn()))


def test_equalisation_keeps_the_function_and_shares_the_ranges(nets, tmp_path):
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from edgeprune.deploy.onnx_session import make_session
    x, _ = _images(32, 2)
    export_onnx(nets[0], tmp_path / "m.onnx", SIDE, check_inputs=x[:4], dynamic_batch=True)
    quant_pre_process(str(tmp_path / "m.onnx"), str(tmp_path / "p.onnx"), skip_symbolic_shape=True)
    model = onnx.load(str(tmp_path / "p.onnx"))
    assert equalize(model) == 1                       # conv -> relu -> conv (BatchNorm folded)
    onnx.save(model, str(tmp_path / "e.onnx"))
    before, after = (make_session(str(tmp_path / f), 1).run(None, {"input": x.numpy()})[0] for f in ("p.onnx", "e.onnx"))
    assert np.abs(before - after).max() < 1e-4
    w = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    r1 = np.abs(w[convs[0].input[1]]).max(axis=(1, 2, 3))
    r2 = np.abs(w[convs[1].input[1]]).max(axis=(0, 2, 3))
    assert np.allclose(r1, r2, rtol=1e-4)             # each channel's range shared by both layers


def _control(net, tmp_path, max_drop, confidence=None):
    x, y = _images(400, 3)
    export_onnx(net, tmp_path / "m.onnx", SIDE, check_inputs=x[:8], dynamic_batch=True)
    calibration = [_images(128, 4)[0].numpy()]
    return quantize_with_accuracy_control(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", calibration, [(x, y)],
                                          max_drop=max_drop, calibration_images=128, confidence=confidence)


def test_a_quantization_hostile_layer_is_kept_in_float(nets, tmp_path):
    report = _control(nets[1], tmp_path, max_drop=1.0)
    assert report.accuracy_fp32 > 0.9 and report.accuracy_plain < 0.5      # plain int8 breaks it
    assert len(report.float_layers) == 1 and report.float_layers[0].endswith("Gemm")   # the classifier, first
    assert max(report.layer_errors, key=report.layer_errors.get) == report.float_layers[0]
    assert report.met and report.drop <= 1.0 and report.path.is_file() and report.plain_path.is_file()


def test_a_tolerance_no_mix_meets_keeps_the_closest_not_the_last(nets, tmp_path):
    """-50 points cannot be met: the file kept is the mix closest to it (the hostile
    classifier in float, the first that does not lose), not every layer in float."""
    report = _control(nets[1], tmp_path, max_drop=-50.0)
    layers = weight_layers(tmp_path / "m.onnx")
    assert not report.met and report.accuracy > report.accuracy_plain
    assert report.float_layers and len(report.float_layers) < len(layers)
    assert report.float_layers[0].endswith("Gemm") and report.path.is_file()


def test_with_a_confidence_the_drop_s_upper_bound_is_held(nets, tmp_path):
    report = _control(nets[1], tmp_path, max_drop=1.0, confidence=0.95)
    assert report.float_layers and report.met and report.bound <= 1.0
    assert report.bound == pytest.approx(report.drop + report.drop_ci / 1.96 * 1.6449, abs=1e-3)


def test_a_benign_model_stays_int8(nets, tmp_path):
    report = _control(nets[0], tmp_path, max_drop=2.0)
    assert report.float_layers == [] and report.met and report.quantizations == 3   # plain, equalised, corrected
    assert report.equalized_pairs == 1 and report.bias_corrected == 3


def _files(net, tmp_path, max_drop):
    x, y = _images(400, 3)
    cal = _images(128, 4)[0]
    files = TrialArtifacts(net, SIDE, DeployConfig(calibration_images=128, reduce_range=False), "m",
                           check_images=lambda s: x[:16], calibration=lambda s: [cal],
                           test_batches=[(x, y)], held_out=lambda s, n, source: [(x[:n], y[:n])])
    files.int8_options = {"max_drop": max_drop, "held_out": 400}
    return files


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_controlled_int8_agrees_with_fp32_in_each_runtime(nets, tmp_path, backend):
    from edgeprune.registry import LATENCY_BACKENDS
    cls = LATENCY_BACKENDS.get(backend)
    if cls.missing() or (backend == "openvino" and importlib.util.find_spec("nncf") is None):
        pytest.skip(f"{backend} is not installed here: pip install 'edgeprune[{cls.extra}]'")
    files = _files(nets[1], tmp_path, max_drop=1.0)
    b = cls(LatencySpec(backend=backend, threads=1, batch_size=1, repeats=2, warmup=1, min_seconds=0))
    try:
        checks = b.assess(files, True)
    finally:
        files.close()
    assert checks["top1_agreement"] >= 0.9 and checks["accuracy"] >= 0.9, checks
    assert checks["float_layers"] if backend == "openvino" else files.controlled[SIDE].float_layers


def test_the_tolerance_is_checked_and_named_in_trial_ids(tiny_cifar):
    for bad in (150, -1, "lots"):
        with pytest.raises(ConfigError) as e:
            load_config(sweep_config(tiny_cifar, "x", quantize=["none", {"int8": {"max_drop": bad}}]))
        assert "\n" not in str(e.value) and "max_drop" in str(e.value)
    with pytest.raises(ConfigError, match="maxdrop.*did you mean: max_drop"):
        load_config(sweep_config(tiny_cifar, "x", quantize=[{"int8": {"maxdrop": 1}}]))
    cfg = load_config(sweep_config(tiny_cifar, "x", quantize=["none", "int8", {"int8": {"max_drop": 0.3}}]))
    assert cfg.quantize == ["none", "int8", "int8(max_drop=0.3)"]
    specs = plan_trials(cfg)
    assert len({s.trial_id for s in specs}) == len(specs) and specs[2].describe().endswith("int8(max_drop=0.3)")
    assert specs[1].as_dict()["quantize"] == "int8" and specs[2].trained_twin() == specs[0]
    # the string form reads back as the same entry (a run folder's config.yaml)
    assert load_config(sweep_config(tiny_cifar, "x", quantize=["int8(max_drop=0.3)"])).quantize == ["int8(max_drop=0.3)"]


def test_the_drop_can_be_measured_on_test_images_that_no_accuracy_includes(tiny_cifar):
    from edgeprune.data import load_dataset
    entry = {"int8": {"max_drop": 0.3, "held_out_from": "test"}}
    with pytest.raises(ConfigError) as e:                     # test_fraction 1 leaves none out
        load_config(sweep_config(tiny_cifar, "x", quantize=[entry]))
    assert "\n" not in str(e.value) and "dataset.test_fraction below 1" in str(e.value)
    with pytest.raises(ConfigError, match="held_out_from"):
        load_config(sweep_config(tiny_cifar, "x", quantize=[{"int8": {"max_drop": 0.3, "held_out_from": "val"}}]))
    cfg = load_config(sweep_config(tiny_cifar, "x", quantize=["none", entry], dataset={
        "name": "cifar10", "root": str(tiny_cifar), "test_fraction": 0.6}))
    assert cfg.quantize == ["none", 'int8(held_out_from="test", max_drop=0.3)']
    data = load_dataset(cfg.dataset, cfg.seed)
    # the test images split in two: 60 measured, 40 for accuracy control, none in both
    assert (len(data.test), len(data.test_rest)) == (60, 40)
    whole = load_dataset(cfg.dataset.model_copy(update={"test_fraction": 1.0}), cfg.seed).test.images
    seen = {bytes(x.numpy()) for x in data.test.images}
    rest = {bytes(x.numpy()) for x in data.test_rest.images}
    assert not seen & rest and seen | rest == {bytes(x.numpy()) for x in whole}
    assert load_dataset(cfg.dataset.model_copy(update={"test_fraction": 1.0}), cfg.seed).test_rest is None


def test_a_sweep_keeps_the_hostile_layer_in_float_and_says_what_it_costs(tiny_cifar, tmp_path):
    out = tmp_path / "run"
    cfg = sweep_config(tiny_cifar, out, models=[{"name": "tiny_models:int8_hostile_cnn", "pretrained": False}],
                       baseline=False, quantize=["none", "int8", {"int8": {"max_drop": 0}},
                                                 {"int8": {"max_drop": 0, "held_out_from": "test",
                                                           "confidence": 0.9}}],
                       # the constructed classifier (1e4 weights on a dead channel) is kept as built: no
                       # least-squares rebuild (with it, the 30 steps at lr 0.05 did not train the toy)
                       prune={"reconstruct": 0},
                       finetune={"epochs": 2, "max_steps": 30, "batch_size": 32, "lr": 0.05},
                       deploy={"calibration_images": 64})
    cfg["measure"]["latency"] = ["onnxruntime"]
    cfg["dataset"]["test_fraction"] = 0.6
    run_sweep(load_config(cfg))
    with ResultStore(out, create=False) as store:
        fp32, plain, controlled, on_test = (t.metrics for t in store.trials())
    assert controlled["quantize"] == "int8(max_drop=0.0)" and controlled["fp32_trial_id"] == plain["fp32_trial_id"]
    assert plain["accuracy"] < fp32["accuracy"] - 0.1                # plain int8 breaks it (test set) ...
    assert controlled["accuracy"] >= fp32["accuracy"] - 0.02         # ... accuracy control does not
    assert controlled["held_out_images"] == 136                      # 200 training images - 64 calibration
    assert controlled["held_out_from"] == "train"
    # the same control on the 40 test images that test_fraction 0.6 leaves out
    assert on_test["held_out_from"] == "test" and on_test["held_out_images"] == 40
    assert on_test["float_layers"].endswith("Gemm") and on_test["accuracy"] >= fp32["accuracy"] - 0.02
    assert on_test["int8_confidence"] == 0.9 and on_test["held_out_drop_bound"] >= on_test["held_out_drop"]
    for row in (controlled, on_test):       # a tolerance finer than the images can measure is said
        finer = row["int8_max_drop"] < 100 * row["held_out_drop_ci"]
        assert row["held_out_drop_ci"] >= 0 and finer == ("held-out images measure" in (row.get("warning") or ""))
    assert controlled["float_layers"].endswith("Gemm") and controlled["float_layer_count"] == 1
    assert controlled["int8_within_tolerance"] and controlled["held_out_drop"] <= 0
    assert controlled["accuracy_held_out_int8_plain"] < controlled["accuracy_held_out"]
    assert controlled["float_layers_cost"] > 0 and controlled["float_layers_cost_basis"] == "onnxruntime, paired"
    assert controlled["latency_onnxruntime_ms"] > 0 and "int8_slower" in controlled and controlled["cpu_int8"]


def test_the_drop_is_given_with_the_noise_its_images_allow():
    from edgeprune.deploy.accuracy_control import ControlledReport, _HeldOut
    from edgeprune.sweep.variants import unresolved
    y = np.zeros(1000, dtype=np.int64)
    data = _HeldOut([(np.zeros((1000, 1), np.float32), y)], threads=1)
    data.reference = np.tile([1.0, 0.0], (1000, 1))           # fp32 right on every image
    int8 = data.reference.copy()
    int8[:30] = [0.0, 1.0]                                     # int8 wrong on 30 of them: a 3-point drop
    # paired: d is 1 on 30 images, 0 elsewhere; 1.96 * std(d) / sqrt(1000), in points
    assert data.drop_ci(int8) == pytest.approx(100 * 1.96 * np.sqrt(0.03 * 0.97) / np.sqrt(1000))
    assert data.drop_ci(data.reference) == 0
    assert data.drop_bound(int8, None) == pytest.approx(3.0)
    assert data.drop_bound(int8, 0.95) == pytest.approx(3.0 + data.drop_ci(int8) / 1.96 * 1.6449, abs=1e-3)
    report = ControlledReport(*[None] * 3, 0.3, 1000, 1.0, 0.97, 0.97, 0, 0, False, drop_ci=data.drop_ci(int8))
    assert not report.resolved and "±1.06 points" in unresolved(report)
    assert "about 12,500 would do" in unresolved(report)       # 1000 * (1.057 / 0.3) ** 2, to hundreds
