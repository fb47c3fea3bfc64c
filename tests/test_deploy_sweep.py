"""int8 and latency backends inside a sweep, end to end on a tiny model; the
config forms; `edgeprune deploy` of a finished trial."""
import json
import threading
from pathlib import Path

import pytest
import torch

from edgeprune import load_config, load_results, run_sweep
from edgeprune.cli import main
from edgeprune.deploy import quantize_onnx, export_onnx
from edgeprune.measure import onnx_accuracy
from edgeprune.measure.cpu_features import cpu_int8
from edgeprune.agent import TOKEN_ENV, make_server
from edgeprune.errors import ConfigError
from edgeprune.store import ResultStore
from edgeprune.sweep import plan_trials
from edgeprune.sweep.settings import shared_settings

from conftest import sweep_config

TOKEN = "sweep-test-token-0123456789"




@pytest.fixture(scope="module")
def agent_url():
    server = make_server("127.0.0.1", 0, TOKEN, quiet=True, bench_timeout=60)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory, tiny_cifar, agent_url):
    """fp32 and int8 trials of a tiny net, latency on torch, onnxruntime and a loopback
    device agent, with distillation."""
    mp = pytest.MonkeyPatch()
    mp.setenv(TOKEN_ENV, TOKEN)
    out = tmp_path_factory.mktemp("int8") / "run"
    cfg = sweep_config(tiny_cifar, out, models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}], quantize=["none", "int8"],
                       measure={"latency": ["torch", "onnxruntime", {"device": agent_url, "name": "pi"}],
                                "latency_repeats": 3, "latency_warmup": 1, "eval_batch_size": 100,
                                "latency_min_seconds": 0},
                       deploy={"calibration_images": 64, "save_onnx": True})
    cfg["finetune"]["distill"] = {"temperature": 2.0, "weight": 0.5}
    run_sweep(load_config(cfg))
    yield out, cfg
    mp.undo()


@pytest.mark.slow
def test_int8_trials_sit_beside_their_fp32_twins(int8_run):
    run, _ = int8_run
    with ResultStore(run, create=False) as store:
        trials = store.trials()
    assert [(t.model, t.algorithm, t.status) for t in trials] == [
        ("tiny_models:tiny_cnn", "none", "done"), ("tiny_models:tiny_cnn int8", "none", "done"),
        ("tiny_models:tiny_cnn", "l1", "done"), ("tiny_models:tiny_cnn int8", "l1", "done")], \
        [t.error for t in trials]
    fp32, int8 = trials[2].metrics, trials[3].metrics
    assert fp32["quantize"] == "none" and int8["quantize"] == "int8" and int8["fp32_trial_id"] == trials[2].trial_id
    assert int8["accuracy_fp32"] == fp32["accuracy"] and 0 <= int8["accuracy"] <= 1
    assert int8["params"] == fp32["params"] and int8["mac_reduction"] == fp32["mac_reduction"]
    assert int8["size_bytes"] == Path(int8["onnx_path"]).stat().st_size and int8["calibration_images"] == 64
    assert fp32["onnx_max_abs_diff"] <= 1e-4
    # latency: every backend for fp32; the ONNX ones for int8; latency_ms from onnxruntime for both
    for key in ("latency_torch_ms", "latency_onnxruntime_ms", "latency_pi_ms", "latency_pi_p90_ms"):
        assert fp32[key] > 0, key
    assert "latency_torch_ms" not in int8 and int8["latency_onnxruntime_ms"] > 0 and int8["latency_pi_ms"] > 0
    assert fp32["latency_backend"] == int8["latency_backend"] == "onnxruntime"
    assert int8["latency_pi_info"]["onnxruntime"] and "onnxruntime" in int8["latency_pi_device"]
    # honest speed: each backend's int8 / fp32 ratio and the flag; the CPUs' int8 instructions (the device's own)
    assert int8["latency_onnxruntime_vs_fp32"] > 0 and int8["latency_pi_vs_fp32"] > 0
    assert int8["int8_slower"] == (int8["int8_vs_fp32"] > 1) and int8["int8_vs_fp32"] == int8["latency_onnxruntime_vs_fp32"]
    assert fp32["cpu_int8"] == int8["cpu_int8"] == cpu_int8() == int8["latency_pi_cpu_int8"]
    # distillation: pruned trials distil from the unpruned model, the baseline does not
    assert fp32["distilled"] and not trials[0].metrics["distilled"]
    # the ONNX files were kept
    assert Path(fp32["onnx_path"]).is_file() and Path(int8["onnx_path"]).name.endswith(".int8.onnx")
    df = load_results(run)
    assert {"quantize", "latency_onnxruntime_ms", "latency_pi_ms"} <= set(df.columns)


def test_deploy_command_writes_verified_files(int8_run, tmp_path, capsys):
    run, _ = int8_run
    with ResultStore(run, create=False) as store:
        trial = store.trials()[3]                    # the int8 pruned trial: int8 implied
    assert main(["deploy", str(run), trial.trial_id[:8], "--torchscript", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "onnx:" in out and "torchscript:" in out and "int8:" in out
    manifest = json.loads((tmp_path / "deploy.json").read_text())
    assert manifest["input"]["size"] == 32 and len(manifest["input"]["mean"]) == 3
    assert manifest["checks"]["onnx"]["max_abs_diff"] <= 1e-4 and manifest["checks"]["onnx"]["real_images"]
    for name in manifest["files"].values():
        assert (tmp_path / name).is_file()
    assert 0 <= manifest["int8_accuracy_onnxruntime"] <= 1
    assert main(["deploy", str(run), "ffffffffff"]) == 2


def test_quantize_onnx_shrinks_the_file_and_keeps_accuracy_measurable(tmp_path, tiny_cifar):
    from edgeprune.config import DatasetConfig
    from edgeprune.data import BatchLoader, load_dataset
    from edgeprune.models import create_model
    torch.manual_seed(0)
    model = create_model("resnet20", 10, pretrained=False).eval()
    fp32 = export_onnx(model, tmp_path / "m.onnx", 32, dynamic_batch=True).path
    data = load_dataset(DatasetConfig(root=str(tiny_cifar)))
    calib = BatchLoader(data.train, 32, (0.5,) * 3, (0.25,) * 3, shuffle=True)
    report = quantize_onnx(fp32, tmp_path / "m.int8.onnx", calib, calibration_images=64, per_channel=True)
    assert report.calibration_images == 64 and report.size_bytes < 0.4 * report.fp32_size_bytes
    test = BatchLoader(data.test, 50, (0.5,) * 3, (0.25,) * 3)
    acc32, acc8 = onnx_accuracy(fp32, test), onnx_accuracy(report.path, test)
    assert abs(acc32 - acc8) <= 0.1
    assert not list(Path.cwd().glob("sym_shape_infer_temp*"))   # nothing left in the working folder


def test_latency_config_forms_and_errors(tiny_cifar):
    base = {"models": ["resnet20"], "dataset": {"root": str(tiny_cifar)}}
    cfg = load_config(dict(base, measure={"latency": {"device": "http://pi:8787"}}))
    (b,) = cfg.measure.latency_backends()
    assert b.backend == "device" and b.label == "device" and b.threads == 1 and b.repeats == 20
    cfg = load_config(dict(base, measure={"latency": ["ort", {"backend": "torch", "threads": 2}],
                                          "latency_batch_size": 4}))
    assert [(b.backend, b.threads, b.batch_size) for b in cfg.measure.latency_backends()] == [
        ("onnxruntime", 1, 4), ("torch", 2, 4)]
    assert load_config(dict(base, measure={"latency": False})).measure.latency_backends() == []
    for bad, msg in [({"measure": {"latency": "tensorrt"}}, "unknown latency backend"),
                     ({"measure": {"latency": {"device": "pi:8787"}}}, "http://HOST:PORT"),
                     ({"measure": {"latency": ["torch", "torch"]}}, "labelled"),
                     ({"quantize": ["int4"]}, "quantize"),
                     ({"finetune": {"distill": {"temperature": 0}}}, "temperature"),
                     ({"deploy": {"dynamic_batch": False}, "measure": {"latency": "ort", "latency_batch_size": 2}},
                      "dynamic_batch")]:
        with pytest.raises(ConfigError, match=msg):
            load_config(dict(base, **bad))


def test_new_settings_leave_old_trial_ids_alone(tiny_cifar):
    """A run folder made before deployment existed still resumes: at their defaults the
    new settings are not part of a trial's identity."""
    cfg = load_config({"models": ["resnet20"], "rates": [0.5], "dataset": {"root": str(tiny_cifar)}})
    settings = shared_settings(cfg)
    assert "quantize" not in settings and "deploy" not in settings and "distill" not in settings["finetune"]
    assert "latency_batch_size" not in settings["measure"]
    specs = plan_trials(cfg)
    assert [s.quantize for s in specs] == ["none", "none"]
    cfg8 = load_config({"models": ["resnet20"], "rates": [0.5], "quantize": ["none", "int8"],
                        "dataset": {"root": str(tiny_cifar)}})
    specs8 = plan_trials(cfg8)
    assert [s.quantize for s in specs8] == ["none", "int8", "none", "int8"]
    assert specs8[1].trained_twin().trial_id == specs8[0].trial_id != specs8[1].trial_id
    assert specs8[1].to_row()["model"] == "resnet20 int8"


def test_an_unreachable_device_fails_the_trial_with_a_clear_error(tmp_path, tiny_cifar, monkeypatch):
    import socket
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = sweep_config(tiny_cifar, tmp_path / "run", models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}],
                       baseline=False, measure={"latency": {"device": f"http://127.0.0.1:{port}", "timeout": 5},
                                                "latency_repeats": 2, "eval_batch_size": 100})
    run_sweep(load_config(cfg))
    with ResultStore(tmp_path / "run", create=False) as store:
        (trial,) = store.trials()
    assert trial.status == "failed" and "did not answer" in trial.error and f":{port}" in trial.error
