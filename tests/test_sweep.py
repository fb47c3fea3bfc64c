"""End to end: sweep, store, resume, failures, show / export / report."""
import csv
import io

import pytest
import torch
import yaml

import edgeprune.sweep.unpruned as unpruned_module
import edgeprune.sweep.trial as trial_module
from edgeprune.models import create_model
from edgeprune import load_config, load_results, run_sweep
from edgeprune.cli import main
from edgeprune.errors import EdgepruneError
from edgeprune.store import ResultStore

from conftest import force_status, make_cifar, sweep_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_cifar):
    """One small sweep through the CLI, shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = sweep_config(tiny_cifar, tmp / "run", algorithms=["l1", "fpgm"], rates=[0.3, 0.6])
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["sweep", str(path), "--quiet"]) == 0
    return tmp / "run", path


@pytest.mark.slow
def test_cli_sweep_stores_every_trial_with_metrics(finished_run):
    run, _ = finished_run
    with ResultStore(run, create=False) as store:
        trials = store.trials()
        assert store.integrity_ok()
    assert [(t.algorithm, t.rate) for t in trials] == [("none", 0.0), ("l1", 0.3), ("l1", 0.6),
                                                       ("fpgm", 0.3), ("fpgm", 0.6)]
    assert all(t.status == "done" and t.attempts == 1 for t in trials)
    m = trials[2].metrics
    for key in ["accuracy", "accuracy_pruned", "params", "param_reduction", "macs", "mac_reduction",
                "size_bytes", "latency_ms", "latency_threads", "prune_seconds", "finetune_seconds",
                "channel_ratio", "layer_channels", "base_accuracy"]:
        assert key in m, key
    assert m["layer_channels"]["conv1"] == [16, 6] and m["layer_channels"]["linear"] == [10, 10]
    assert 0 < trials[1].metrics["param_reduction"] < m["param_reduction"] < 1
    assert trials[0].metrics["param_reduction"] == 0 and trials[0].metrics["size_bytes"] > m["size_bytes"]
    assert (run / "config.yaml").is_file()


def test_rerun_resumes_and_duplicates_nothing(finished_run):
    run, path = finished_run
    with ResultStore(run, create=False) as store:
        before = {t.trial_id: t.finished_at for t in store.trials()}
        crashed = store.trials()[3].trial_id
    force_status(run, crashed, "running")        # as if the process had died mid-trial
    assert main(["sweep", str(path), "--quiet"]) == 0
    with ResultStore(run, create=False) as store:
        after = store.trials()
    assert len(after) == len(before) and all(t.status == "done" for t in after)
    for t in after:
        assert (t.finished_at == before[t.trial_id]) == (t.trial_id != crashed)
    assert next(t for t in after if t.trial_id == crashed).attempts == 2  # the crashed attempt + the rerun


@pytest.mark.slow
def test_show_export_report(finished_run, capsys, tmp_path):
    run, _ = finished_run
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "fpgm" in shown and "5 done" in shown
    assert main(["export", str(run), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 5 and {"accuracy", "param_reduction", "latency_ms"} <= set(rows[0])
    assert main(["report", str(run), "--out", str(tmp_path / "fig")]) == 0
    for stem in ("accuracy_vs_rate", "param_reduction_vs_rate"):
        for ext in ("png", "svg"):
            f = tmp_path / "fig" / f"{stem}.{ext}"
            assert f.is_file() and f.stat().st_size > 5000
    assert len(load_results(run)) == 5


@pytest.mark.slow
def test_failed_trial_is_recorded_and_the_sweep_goes_on(tiny_cifar, tmp_path, monkeypatch):
    real = trial_module.prune_model

    def flaky(model, algorithm, *args, **kwargs):
        if algorithm == "fpgm":
            raise RuntimeError("cannot prune this one")
        return real(model, algorithm, *args, **kwargs)

    monkeypatch.setattr(trial_module, "prune_model", flaky)
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", algorithms=["fpgm", "l1"]))
    run_sweep(cfg)
    with ResultStore(tmp_path / "run", create=False) as store:
        status = {t.algorithm: (t.status, t.error) for t in store.trials()}
    assert status["l1"][0] == "done" and status["none"][0] == "done"
    assert status["fpgm"][0] == "failed" and status["fpgm"][1].startswith("RuntimeError: cannot prune this one")
    # failed trials are kept unless asked to retry
    monkeypatch.setattr(trial_module, "prune_model", real)
    run_sweep(cfg)
    with ResultStore(tmp_path / "run", create=False) as store:
        assert store.counts()["failed"] == 1
    run_sweep(cfg, retry_failed=True)
    with ResultStore(tmp_path / "run", create=False) as store:
        assert store.counts() == {"pending": 0, "running": 0, "done": 3, "failed": 0, "cancelled": 0}


@pytest.mark.slow
def test_ctrl_c_cancels_the_running_trial_and_resume_finishes(tiny_cifar, tmp_path, monkeypatch):
    real, calls = trial_module.run_trial, []

    def interrupt_second(spec, ctx, *args):
        calls.append(spec)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(spec, ctx, *args)

    import edgeprune.sweep.executors.local as engine
    monkeypatch.setattr(engine, "run_trial", interrupt_second)
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", rates=[0.3, 0.5]))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg)
    with ResultStore(tmp_path / "run", create=False) as store:
        assert [t.status for t in store.trials()] == ["done", "cancelled", "pending"]
    monkeypatch.setattr(engine, "run_trial", real)
    run_sweep(cfg)
    with ResultStore(tmp_path / "run", create=False) as store:
        assert [t.status for t in store.trials()] == ["done"] * 3


@pytest.mark.slow
def test_other_settings_in_the_same_run_folder_are_refused(tiny_cifar, tmp_path):
    run_sweep(load_config(sweep_config(tiny_cifar, tmp_path / "run", baseline=False)))
    changed = sweep_config(tiny_cifar, tmp_path / "run", baseline=False)
    changed["finetune"]["lr"] = 0.1
    with pytest.raises(EdgepruneError, match=r"other settings \(finetune.lr: 0.01 -> 0.1\)"):
        run_sweep(load_config(changed))
    # other rates are refused unless the folder is to grow; config.yaml then records them all
    grown = sweep_config(tiny_cifar, tmp_path / "run", baseline=False, rates=[0.7])
    with pytest.raises(EdgepruneError, match=r"holds other trials than the config names \(1 new trial\(s\), e.g. "
                                             r"resnet20 l1 @ 0.7; 1 of its trials are not named.*--extend"):
        run_sweep(load_config(grown))
    run_sweep(load_config(grown), extend=True)
    assert len(load_results(tmp_path / "run")) == 2
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert [r["value"] for r in recorded["rates"]] == [0.5, 0.7]


@pytest.mark.slow
def test_pretrained_head_is_adapted_once_and_reused(tmp_path, monkeypatch):
    data = make_cifar(tmp_path / "data4", num_classes=4)
    ckpt = tmp_path / "r20.pt"
    torch.save(create_model("resnet20", 10, pretrained=False).state_dict(), ckpt)
    calls = []
    real = trial_module.finetune

    def counting(model, loader, cfg, **kw):
        calls.append(kw.get("epochs"))
        return real(model, loader, cfg, **kw)

    monkeypatch.setattr(trial_module, "finetune", counting)
    monkeypatch.setattr(unpruned_module, "finetune", counting)
    cfg = sweep_config(data, tmp_path / "run", models=[{"name": "resnet20", "checkpoint": str(ckpt)}],
                       rates=[0.3, 0.5], finetune={"epochs": 1, "max_steps": 1, "batch_size": 32, "adapt_epochs": 1})
    run_sweep(load_config(cfg))
    assert calls == [1, None, None, None]          # one adaptation, then 3 trials
    assert len(list((tmp_path / "run" / "adapted").glob("*.pt"))) == 1
    df = load_results(tmp_path / "run")
    assert df["adapted"].all() and (df["status"] == "done").all()
    # a second sweep into the same folder reuses the cached adaptation
    with ResultStore(tmp_path / "run", create=False) as store:
        force_status(tmp_path / "run", store.trials()[1].trial_id, "running")
    calls.clear()
    run_sweep(load_config(cfg))
    assert calls == [None]


@pytest.mark.slow
def test_global_target_in_a_sweep(tiny_cifar, tmp_path):
    cfg = sweep_config(tiny_cifar, tmp_path / "run", rates=["params=0.5"], baseline=False)
    run_sweep(load_config(cfg))
    df = load_results(tmp_path / "run")
    assert abs(df.loc[0, "param_reduction"] - 0.5) <= 0.01 and df.loc[0, "target_kind"] == "params"


@pytest.mark.slow
def test_alexnet_is_fed_its_minimum_input_size(tiny_cifar, tmp_path):
    cfg = sweep_config(tiny_cifar, tmp_path / "run", models=[{"name": "alexnet", "pretrained": False}],
                       baseline=False, finetune={"epochs": 1, "max_steps": 1, "batch_size": 16},
                       dataset={"name": "cifar10", "root": str(tiny_cifar), "test_fraction": 0.2})
    run_sweep(load_config(cfg))
    df = load_results(tmp_path / "run")
    assert df.loc[0, "status"] == "done" and df.loc[0, "input_size"] == 63


@pytest.mark.slow
def test_trial_model_is_saved_or_rebuilt(finished_run, tmp_path):
    from edgeprune.measure import count_params
    from edgeprune.sweep import trial_model
    run, _ = finished_run
    with ResultStore(run, create=False) as store:
        t = store.trials()[2]
    rebuilt = trial_model(run, t.trial_id[:8])       # not saved: the trial is run again
    assert count_params(rebuilt) == t.metrics["params"]
    with pytest.raises(EdgepruneError, match="no trial 'zzz'"):
        trial_model(run, "zzz")
