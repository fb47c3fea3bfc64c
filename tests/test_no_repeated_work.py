"""An int8 variant never repeats its twin's prune and fine-tune: counted, in every
process, by the `counting_sgd` optimizer plugin (tests/counting_plugin.py)."""
import pytest

import edgeprune.registry as registry
from edgeprune import load_config, load_results, run_sweep

from conftest import force_status, sweep_config

ROWS = 6          # baseline + 2 rates, each fp32 and int8
TRAINED = 3       # fine-tunes a sweep needs: one per trained trial


@pytest.fixture
def counted(tmp_path, monkeypatch):
    path = tmp_path / "finetunes.txt"
    monkeypatch.setenv("EDGEPRUNE_COUNT_FILE", str(path))
    return lambda: len(path.read_text().splitlines()) if path.exists() else 0


def _cfg(data, out, **kw):
    return sweep_config(data, out, rates=[0.3, 0.6], quantize=["none", "int8"], plugins=["counting_plugin"],
                        finetune={"epochs": 1, "max_steps": 2, "batch_size": 32, "optimizer": "counting_sgd"},
                        measure={"latency": ["onnxruntime"], "latency_repeats": 2, "latency_warmup": 1,
                                 "eval_batch_size": 100, "latency_min_seconds": 0},
                        deploy={"calibration_images": 32}, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_one_finetune_per_trained_trial(tiny_cifar, tmp_path, counted, executor):
    cfg = load_config(_cfg(tiny_cifar, tmp_path / "run", executor=executor, ray={"num_cpus": 2}))
    run_sweep(cfg)
    df = load_results(tmp_path / "run")
    assert len(df) == ROWS and (df["status"] == "done").all(), df["error"].tolist()
    assert counted() == TRAINED                   # not 6: each int8 row is made from its twin's model
    int8 = df[df["model"].str.endswith("int8")]
    fp32 = df.set_index("trial_id")
    assert (int8["fp32_trial_id"].map(fp32["accuracy"]) == int8["accuracy_fp32"]).all()


@pytest.mark.slow
def test_resume_reruns_unfinished_tasks_once_and_retries_variants_without_training(tiny_cifar, tmp_path, counted,
                                                                                   monkeypatch):
    real = registry.VARIANTS.get("int8")
    failures = []

    def int8_fails_once(*args):
        if not failures:
            failures.append(1)
            raise RuntimeError("calibration went wrong")
        return real(*args)

    monkeypatch.setitem(registry.VARIANTS._items, "int8", int8_fails_once)
    cfg = load_config(_cfg(tiny_cifar, tmp_path / "run"))
    run_sweep(cfg)
    df = load_results(tmp_path / "run")
    assert counted() == TRAINED and (df["status"] == "failed").sum() == 1
    assert "calibration went wrong" in df[df["status"] == "failed"].iloc[0]["error"]
    assert len(list((tmp_path / "run" / "models").glob("*.pt"))) == 1     # the twin kept its model for it
    # the retry makes the failed variant from its twin's kept model: no fine-tune
    run_sweep(cfg, retry_failed=True)
    df = load_results(tmp_path / "run")
    assert (df["status"] == "done").all() and counted() == TRAINED
    # a task a crash left running (both rows) is rerun once, for both rows
    task = df[df["algorithm"] == "l1"].iloc[:2]["trial_id"].tolist()
    for trial_id in task:
        force_status(tmp_path / "run", trial_id, "running")
    run_sweep(cfg)
    assert counted() == TRAINED + 1 and (load_results(tmp_path / "run")["status"] == "done").all()
