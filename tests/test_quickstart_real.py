"""The quickstart config on the real CIFAR-10 in ../shared/datasets, when present."""
import pytest
import yaml

from edgeprune.cli import main
from edgeprune import load_results

from conftest import SHARED

DATA = SHARED / "datasets"


@pytest.mark.skipif(not (DATA / "cifar-10-batches-py" / "test_batch").is_file(),
                    reason=f"real CIFAR-10 not found at {DATA} (the shared data folder); skipping")
def test_quickstart_on_real_cifar10(tmp_path):
    cfg = yaml.safe_load(open("examples/quickstart.yaml"))
    assert len(cfg["models"]) in (2, 3)
    args = ["sweep", "examples/quickstart.yaml", "--quiet", "--data-dir", str(DATA), "--out", str(tmp_path / "run"),
            "--set", "dataset.train_fraction=0.005", "--set", "dataset.test_fraction=0.02",
            "--set", "finetune.max_steps=2", "--set", "rates=[0.5]", "--set", "measure.latency_repeats=2"]
    for i in range(len(cfg["models"])):
        args += ["--set", f"models.{i}.pretrained=false"]
    assert main(args) == 0
    df = load_results(tmp_path / "run")
    assert (df["status"] == "done").all()
    assert len(df) == len(cfg["models"]) * (1 + len(cfg["algorithms"]))
    assert (df[df["algorithm"] != "none"]["param_reduction"] > 0.5).all()
