"""What only a GPU can show: training on cuda, bf16 autocast, torch.compile, and a
Ray sweep whose trials share a GPU. Skipped, with the reason, where there is none
(bench/gpu/run.sh runs these on a lent GPU machine)."""
import pytest
import torch

from edgeprune import load_config, load_results, run_sweep

from conftest import sweep_config

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
              pytest.mark.slow]


def test_a_sweep_trains_on_the_gpu_in_bf16_and_records_the_precision(tiny_cifar, tmp_path):
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", rates=[0.5], device="cuda",
                                   finetune={"epochs": 1, "max_steps": 3, "batch_size": 32, "amp": "auto"}))
    run_sweep(cfg)
    df = load_results(tmp_path / "run")
    assert (df["status"] == "done").all()
    from edgeprune.run import RunFolder
    assert all(t.spec["settings"]["precision"] == "bf16" for t in RunFolder(tmp_path / "run").trials())


def test_compiled_finetuning_runs(tiny_cifar, tmp_path):
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", rates=[0.5], baseline=False, device="cuda",
                                   finetune={"epochs": 1, "max_steps": 3, "batch_size": 32, "compile": True}))
    run_sweep(cfg)
    assert (load_results(tmp_path / "run")["status"] == "done").all()


def test_ray_trials_share_a_gpu(tiny_cifar, tmp_path):
    pytest.importorskip("ray")
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", rates=[0.3, 0.6], executor="ray",
                                   ray={"num_cpus": 2, "gpus_per_trial": 0.5},
                                   finetune={"epochs": 1, "max_steps": 3, "batch_size": 32}))
    run_sweep(cfg)
    assert (load_results(tmp_path / "run")["status"] == "done").all()
