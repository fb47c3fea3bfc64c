"""Plugins: an installed package's criteria swept from the CLI on both executors,
unpackaged plugin modules, driver-side registrations reaching Ray workers, and
names validated against the registries."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from edgeprune import load_config, load_results, plugins, run_sweep
from edgeprune.cli import main
from edgeprune.errors import ConfigError, EdgepruneError, OfflineError
from edgeprune.registry import ALGORITHMS, plugin_snapshot

from conftest import sweep_config

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
EXAMPLE = ["tp_lamp", "tp_bn_scale", "tp_hessian", "cosine_redundancy", "mask_l1"]


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    """examples/plugins installed by pip (into its own folder: the test leaves the
    environment alone) and seen only through its entry point."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(ROOT / "examples" / "plugins")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(target.glob("edgeprune_example_plugins-*.dist-info/entry_points.txt"))
    return target


def _cli(args: list[str], site: Path, cwd: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(TESTS)]), **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "edgeprune.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_installed_plugin_criteria_sweep_from_the_cli(installed_plugin, tiny_cifar, tmp_path, executor):
    cfg = sweep_config(tiny_cifar, tmp_path / "run", algorithms=EXAMPLE, rates=[0.5], baseline=False,
                       executor=executor, ray={"num_cpus": 2, "cpus_per_trial": 1})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    listed = _cli(["algorithms"], installed_plugin, tmp_path)
    assert all(name in listed.stdout for name in EXAMPLE), listed.stdout + listed.stderr
    proc = _cli(["sweep", str(tmp_path / "cfg.yaml"), "--quiet"], installed_plugin, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = load_results(tmp_path / "run")
    assert sorted(df["algorithm"]) == sorted(EXAMPLE) and (df["status"] == "done").all(), df[["algorithm", "error"]]
    assert (df["param_reduction"] > 0.5).all()           # channels really removed (about 75 % at rate 0.5)


def test_installed_plugin_is_not_seen_without_it(tiny_cifar, tmp_path):
    """The entry point is what brings the names: without the package the sweep is refused."""
    cfg = sweep_config(tiny_cifar, tmp_path / "run", algorithms=["tp_lamp"])
    with pytest.raises(ConfigError, match="unknown pruning algorithm 'tp_lamp'"):
        load_config(cfg)
    assert not (tmp_path / "run").exists()


def test_unpackaged_plugin_module_from_the_cli(tmp_path, capsys):
    """--plugin imports a module first: its dataset (with its own options), criterion
    and latency backend are valid config names."""
    cfg = {"name": "lab", "out": str(tmp_path / "run"), "models": [{"name": "tiny_models:tiny_cnn",
                                                                    "pretrained": False}],
           "algorithms": ["lab_energy"], "rates": [0.5],
           "dataset": {"name": "stripes", "options": {"classes": 4, "per_class": 8}},
           "finetune": {"epochs": 1, "max_steps": 1, "batch_size": 8},
           "measure": {"latency": ["constant"], "eval_batch_size": 16}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["--plugin", "lab_plugin", "sweep", str(tmp_path / "cfg.yaml"), "--quiet"]) == 0
    df = load_results(tmp_path / "run")
    assert (df["status"] == "done").all() and list(df["algorithm"]) == ["none", "lab_energy"]
    assert (df["latency_constant_ms"] == 1.5).all() and (df["latency_backend"] == "constant").all()
    assert (df["latency_constant_note"] == "constant").all()
    bad = dict(cfg, dataset={"name": "stripes", "options": {"clases": 4}})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["--plugin", "lab_plugin", "sweep", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "options of dataset 'stripes': unknown key 'clases' (did you mean: classes" in err, err
    assert not (tmp_path / "r2").exists()


@pytest.mark.slow
def test_driver_registrations_reach_ray_workers(tiny_cifar, tmp_path):
    """A criterion registered in the driver's own code (no module a worker could
    import) is shipped to the workers with each task."""
    def top_k_variance(filters):
        return filters.weight.var(1)

    plugins.register_criterion("driver_variance", top_k_variance, replace=True)
    assert "driver_variance" in plugin_snapshot()["entries"]["pruning algorithm"]
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", algorithms=["driver_variance"], rates=[0.5],
                                   baseline=False, executor="ray", ray={"num_cpus": 2}))
    run_sweep(cfg)
    df = load_results(tmp_path / "run")
    assert (df["status"] == "done").all(), df["error"].tolist()
    assert (df["param_reduction"] > 0.5).all()


def test_registered_names_are_validated_and_suggested(tiny_cifar, tmp_path):
    plugins.register_optimizer("lion_test", lambda model, cfg: torch.optim.SGD(model.parameters(), lr=cfg.lr),
                               replace=True)
    cfg = sweep_config(tiny_cifar, tmp_path / "run", finetune={"optimizer": "lion_test", "max_steps": 1,
                                                               "batch_size": 32})
    assert load_config(cfg).finetune.optimizer == "lion_test"
    cfg["finetune"]["optimizer"] = "lion_tset"
    with pytest.raises(ConfigError, match=r"unknown optimizer 'lion_tset' \(did you mean: lion_test"):
        load_config(cfg)
    for key, value, message in [("executor", "dask", "unknown executor 'dask'"),
                                ("quantize", ["none", "int4"], "unknown model variant 'int4'"),
                                ("target", {"layers": ["conv1d"]}, "unknown layer type 'conv1d'"),
                                ("measure", {"latency": ["tensorrt"]}, "unknown latency backend 'tensorrt'")]:
        with pytest.raises(ConfigError, match=message):
            load_config(sweep_config(tiny_cifar, tmp_path / "run", **{key: value}))
    with pytest.raises(EdgepruneError, match="registered twice"):
        plugins.register_optimizer("sgd", lambda m, c: None)


def test_model_family_carries_weights_and_their_preprocessing(tmp_path, monkeypatch):
    """register_model_family: published weights (checked against the hash in their
    file name) and the normalisation they expect, served from --weights-dir offline."""
    import hashlib

    from edgeprune.models import create_model

    def build(num_classes):
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten(), torch.nn.Linear(8, num_classes))

    trained = build(5)
    raw = tmp_path / "raw.pt"
    torch.save(trained.state_dict(), raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    (weights_dir / f"labnet-{digest}.pt").write_bytes(raw.read_bytes())
    w = plugins.Weights(f"https://example.org/labnet-{digest}.pt", num_classes=5, mean=(0.1, 0.2, 0.3),
                        std=(0.4, 0.5, 0.6), input_size=24)
    plugins.register_model_family("lab", {"labnet": build}, weights={"labnet": w}, replace=True)
    model = create_model("labnet", 3, pretrained=True, weights_dir=str(weights_dir))
    meta = model.edgeprune_meta
    assert meta["family"] == "lab" and meta["head_replaced"] and meta["mean"] == (0.1, 0.2, 0.3)
    assert meta["input_size"] == 24 and torch.equal(model[0].weight, trained[0].weight)
    (weights_dir / f"labnet-{digest}.pt").write_bytes(b"not the published file")
    with pytest.raises(EdgepruneError, match="does not match its published checksum"):
        create_model("labnet", 3, pretrained=True, weights_dir=str(weights_dir))
    with pytest.raises(OfflineError, match=r"--weights-dir .* has no labnet-"):
        create_model("labnet", 3, pretrained=True, weights_dir=str(tmp_path))


def test_channel_choice_pruner_is_exact_on_coupled_layers():
    """A pruner that brings its own masks: coupled layers follow the group's first
    choice, and the pruned model computes the channel-cut original."""
    from edgeprune.models import create_model
    from edgeprune.prune import cut_reference, prune_model

    @plugins.register_pruner("test_first_half", replace=True)
    def first_half(model, rate, request):
        convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
        return {n: list(range(int(rate * dict(model.named_modules())[n].out_channels))) for n in convs}

    original = create_model("resnet20", 10, pretrained=False).eval()
    result = prune_model(original, "test_first_half", 0.5, 32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (result.model(x) - cut_reference(original, result)(x)).abs().max() < 1e-4
    assert result.layer_channels["conv1"] == (16, 8) and result.layer_channels["layer1.0.conv2"] == (16, 8)
    assert ALGORITHMS.get("test_first_half").structured
