"""The quickstart config on the real CIFAR-10 and the published weights in
../shared (the shared data folder), when present: offline, as the README says."""
import pytest
import yaml

from edgeprune import load_results
from edgeprune.cli import main

from conftest import SHARED

pytestmark = pytest.mark.slow      # Ray instances, real data, killed processes

DATA, WEIGHTS = SHARED / "datasets", SHARED / "models" / "cifar10"


@pytest.mark.skipif(not (DATA / "cifar-10-batches-py" / "test_batch").is_file() or
                    not (WEIGHTS / "resnet20-12fca82f.th").is_file(),
                    reason=f"real CIFAR-10 or the published weights not found under {SHARED}; skipping")
def test_quickstart_offline_on_real_cifar10(tmp_path):
    """A cut-down quickstart (one model, one rate, 2 steps): the published ResNet-20
    served from --weights-dir scores as published; pruning halves its parameters."""
    cfg = yaml.safe_load(open("examples/quickstart.yaml"))
    assert [m["name"] for m in cfg["models"]] == ["resnet20", "resnet56"] and cfg["algorithms"][-1] == "random"
    args = ["sweep", "examples/quickstart.yaml", "--quiet", "--data-dir", str(DATA), "--weights-dir", str(WEIGHTS),
            "--out", str(tmp_path / "run"), "--set", "models=[resnet20]", "--set", "dataset.test_fraction=0.1",
            "--set", "finetune.max_steps=2", "--set", "rates=[0.5]", "--set", "algorithms=[l1]",
            "--set", "measure.latency_repeats=2"]
    assert main(args) == 0
    df = load_results(tmp_path / "run").set_index("algorithm")
    assert (df["status"] == "done").all() and len(df) == 2
    assert abs(df.loc["none", "base_accuracy"] - 0.917) < 0.03       # 91.73 % on the whole test set
    assert df.loc["l1", "param_reduction"] > 0.7
    assert df.loc["l1", "accuracy_recalibrated"] > df.loc["l1", "accuracy_pruned"]
