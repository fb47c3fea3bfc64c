"""The examples run: the published comparison's config in --smoke mode (random
weights, a tiny step per trial), and every example config validates."""
from pathlib import Path

import pytest
import yaml

from edgeprune import load_config, load_results
from edgeprune.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_validate(path, tiny_cifar):
    cfg = load_config(path, data_dir=str(tiny_cifar))
    assert cfg.models and cfg.rates


@pytest.mark.slow
def test_seed_paper_config_runs_in_smoke_mode(tiny_cifar, tmp_path, capsys):
    """Two of its seven models (the whole grid is bench/seed_grid.py's job), its rates'
    ends, random weights: the config's own settings otherwise, but for the least-squares
    rebuild, which tests/test_recover.py tests on each family (here it took 170 of the
    test's 190 s on CI: alexnet's 3,456-input convolutions solved on 20 images)."""
    args = ["sweep", str(EXAMPLES / "seed_paper.yaml"), "--smoke", "--data-dir", str(tiny_cifar),
            "--out", str(tmp_path / "run"), "--quiet", "--set", "models=[alexnet, mobilenet_v2]",
            "--set", "rates=[0.1, 0.8]", "--set", "dataset.train_fraction=0.1",   # the test data is small
            "--set", "prune.reconstruct=0"]
    assert main(args) == 0, capsys.readouterr().err
    df = load_results(tmp_path / "run")
    assert (df["status"] == "done").all() and len(df) == 6
    pruned = df[df["algorithm"] == "l1"].set_index(["model", "rate"])["param_reduction"]
    assert pruned[("mobilenet_v2", 0.8)] > pruned[("mobilenet_v2", 0.1)] > 0
    assert df.set_index("model").loc["alexnet", "input_size"].min() == 63      # alexnet's smallest side
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["target"]["layers"] == ["conv2d"] and cfg["finetune"]["max_steps"] == 1
