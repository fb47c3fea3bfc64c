"""Config validation: one clear error naming the key, exit code 2, nothing written."""
import pytest
import yaml

from edgeprune.cli import main
from edgeprune.config import load_config
from edgeprune.errors import ConfigError

from conftest import sweep_config


def _write(tmp_path, cfg) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_valid_config_and_defaults(tiny_cifar, tmp_path):
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", rates={"start": 0.1, "stop": 0.8, "step": 0.1}))
    assert [r.value for r in cfg.rates] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert cfg.target.layers == ["conv2d"]
    raw = sweep_config(tiny_cifar, tmp_path / "run")
    del raw["rates"]
    assert [r.value for r in load_config(raw).rates] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def test_models_as_plain_names_and_global_targets(tiny_cifar, tmp_path):
    cfg = load_config(sweep_config(tiny_cifar, tmp_path, models=["resnet20", "tiny_models:tiny_cnn"],
                                   rates=[0.3, {"params": 0.5}, "macs=0.4"]))
    assert [m.name for m in cfg.models] == ["resnet20", "tiny_models:tiny_cnn"]
    assert [(r.kind, r.value) for r in cfg.rates] == [("channels", 0.3), ("params", 0.5), ("macs", 0.4)]


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["finetune"].update(epoch=3), r"unknown key 'finetune.epoch' \(did you mean: epochs"),
    (lambda c: c.update(modles=[]), r"unknown key 'modles' \(did you mean: models.*allowed here: algorithms"),
    (lambda c: c["finetune"].update(batch_size="big"), r"finetune.batch_size: .*integer.*'big'"),
    (lambda c: c.update(rates=[0.5, 1.2]), r"rates.1.value: a pruning rate must lie in \(0, 1\) \(got 1.2\)"),
    (lambda c: c.update(rates=[0.0]), r"must lie in \(0, 1\)"),
    (lambda c: c.update(models=["resnet2O"]), r"models.0: unknown model 'resnet2O' \(did you mean: .*resnet20"),
    (lambda c: c.update(algorithms=["fgpm"]), r"unknown pruning algorithm 'fgpm' \(did you mean: fpgm"),
    (lambda c: c["finetune"].update(optimizer="adam"), r"finetune.optimizer: unknown optimizer 'adam' \(did you mean: adamw"),
    (lambda c: c["dataset"].update(name="mnist"), r"dataset.name: unknown dataset 'mnist'"),
    (lambda c: c.update(models=["no_such_pkg.mod:f"]), r"cannot import module 'no_such_pkg.mod'"),
    (lambda c: c.update(rates=[{"flops": 0.3}]), r"rates.0.kind: .*'channels', 'params', 'macs', 'latency_ms' or 'latency'"),
    (lambda c: c.update(algorithms=["unstructured_l1"], rates=["params=0.5"]), r"cannot meet params/macs"),
])
def test_bad_config_gives_one_clear_error(tiny_cifar, tmp_path, mutate, message):
    cfg = sweep_config(tiny_cifar, tmp_path / "run")
    mutate(cfg)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_missing_dataset_folder_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"holds no cifar10.*--data-dir"):
        load_config(sweep_config(tmp_path / "nowhere", tmp_path / "run"))


def test_overrides(tiny_cifar, tmp_path):
    path = _write(tmp_path, sweep_config(tmp_path / "elsewhere", tmp_path / "run"))
    cfg = load_config(path, overrides=["finetune.epochs=3", "models.0.pretrained=true", "algorithms=[l1, fpgm]"],
                      data_dir=str(tiny_cifar), out=str(tmp_path / "other"))
    assert cfg.finetune.epochs == 3 and cfg.models[0].pretrained and cfg.algorithms == ["l1", "fpgm"]
    assert cfg.dataset.root == str(tiny_cifar) and cfg.out == str(tmp_path / "other")
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, overrides=["finetune.epochs"], data_dir=str(tiny_cifar))
    with pytest.raises(ConfigError, match="not an index"):
        load_config(path, overrides=["models.5.pretrained=false"], data_dir=str(tiny_cifar))


def test_cli_exits_2_with_one_line_and_writes_nothing(tiny_cifar, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = sweep_config(tiny_cifar, out)
    cfg["rates"] = [1.5]
    assert main(["sweep", _write(tmp_path, cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "rates.0.value" in err and "(got 1.5)" in err and "Traceback" not in err
    assert not out.exists()


def test_cli_reports_unreadable_yaml(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [resnet20\nrates: 0.5")
    assert main(["sweep", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
