"""Trial identity and the store's contract: run folders made by earlier versions
keep resuming, finished trials are immutable, the numerics join the identity."""
import shutil
from pathlib import Path

import pytest

from edgeprune import load_config, load_results, run_sweep
from edgeprune.cli import main
from edgeprune.errors import EdgepruneError
from edgeprune.store import IDENTITY_VERSION, SCHEMA_VERSION, FinishedTrialError, ResultStore
from edgeprune.sweep.plan import plan_trials
from edgeprune.sweep.settings import shared_settings

from conftest import force_status

DATA = Path(__file__).parent / "data"

# ids computed by edgeprune 0.1.0 (commit eb17d06) for these configs: a change of the
# identity rule breaks every existing run folder's resume, so it must be deliberate.
# (prune.recalibrate_bn: 0 and prune.reconstruct: 0 are what 0.1 did; their defaults since then give other
# results, so other ids.)
OLD = {"prune": {"recalibrate_bn": 0, "reconstruct": 0}}      # and, below, measure's latency_ci / latency_max_repeats / backend_accuracy / ...
OLD_MEASURE = {"latency_ci": None, "latency_max_repeats": None, "backend_accuracy": False,
               "latency_reference": False, "latency_min_seconds": 0.0}
GOLDEN = {
    "basic": ({"models": [{"name": "resnet20", "pretrained": False}], "algorithms": ["l1", "fpgm"],
               "rates": [0.3, {"params": 0.5}], **OLD},
              ["a34e268c23295a00", "52083339919c7609", "935f6b7296327ad4", "b1575ae9b97367a9", "5bc1ce550d3ba065"]),
    "int8_distill": ({"models": ["resnet20", {"name": "mobilenet_v2", "pretrained": False, "checkpoint": "w.pt"}],
                      "algorithms": ["l1"], "rates": [0.5], "quantize": ["none", "int8"],
                      "finetune": {"distill": True, "epochs": 2}, "measure": {"latency": ["onnxruntime"]}, **OLD},
                     ["c1c7737e6a01086d", "003ec1c2df9c0f46", "1f060daec2eb6479", "6d372f441a98e761",
                      "d53da218343d280d", "3f8983dcc4af1ef0", "6e6899446d214e37", "01d483a21f91d580"]),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_trial_ids_are_those_of_earlier_versions(name):
    raw, ids = GOLDEN[name]
    raw = {**raw, "measure": {**raw.get("measure", {}), **OLD_MEASURE}}
    cfg = load_config({**raw, "dataset": {"name": "cifar10", "root": "/nowhere"}}, check_data=False)
    assert [s.trial_id for s in plan_trials(cfg)] == ids
    assert IDENTITY_VERSION == 1      # bump it (and explain resumes) when the rule has to change


def test_a_run_folder_of_edgeprune_0_1_resumes_and_reads(tiny_cifar, tmp_path, capsys):
    """Its config.yaml knows nothing of settings added since (prune.recalibrate_bn, ...):
    the resumed trials keep what 0.1 did."""
    run = tmp_path / "run_v0"
    shutil.copytree(DATA / "run_v0", run)
    before = {t.trial_id: t.finished_at for t in ResultStore(run, readonly=True).trials()}
    args = ["sweep", str(run / "config.yaml"), "--out", str(run), "--data-dir", str(tiny_cifar), "--quiet"]
    assert main(args) == 0                               # nothing to do: every trial is done
    with ResultStore(run, readonly=True) as store:
        assert {t.trial_id: t.finished_at for t in store.trials()} == before
    force_status(run, "8fd388f2275bf9ab", "running")     # as a crash would leave it
    force_status(run, "765ba8cdbf01c4aa", "running")
    assert main(args) == 0
    df = load_results(run)
    assert (df["status"] == "done").all() and len(df) == 4
    assert df["accuracy_recalibrated"].isna().all()      # as 0.1 did: no BatchNorm recalibration
    assert main(["show", str(run)]) == 0 and "8fd388f2" in capsys.readouterr().out
    assert main(["report", str(run)]) == 0


def test_finished_trials_are_immutable_and_versions_recorded(tmp_path):
    with ResultStore(tmp_path) as s:
        s.add_trials([{"trial_id": "t0", "model": "m", "algorithm": "l1", "target_kind": "channels", "rate": 0.5,
                       "seed": 0, "spec": {}}])
        s.mark_running("t0")
        s.mark_done("t0", {"accuracy": 0.5})
        for change in (lambda: s.mark_running("t0"), lambda: s.mark_failed("t0", "x"),
                       lambda: s.mark_done("t0", {"accuracy": 0.9})):
            with pytest.raises(FinishedTrialError, match="finished trials are never changed"):
                change()
        assert s.trials()[0].metrics == {"accuracy": 0.5}
        assert s.get_meta("schema_version") == SCHEMA_VERSION


def test_precision_joins_the_identity(tiny_cifar, tmp_path):
    base = {"models": ["resnet20"], "dataset": {"name": "cifar10", "root": str(tiny_cifar)}, "device": "cpu"}
    fp32 = shared_settings(load_config(base))
    bf16 = shared_settings(load_config({**base, "finetune": {"amp": "bf16"}}))
    assert "precision" not in fp32 and bf16["precision"] == "bf16"
    assert plan_trials(load_config(base))[0].trial_id != plan_trials(load_config({**base, "finetune": {"amp": "bf16"}}))[0].trial_id


@pytest.mark.slow
def test_resuming_in_another_precision_is_refused_with_the_fix(tiny_cifar, tmp_path, monkeypatch):
    """amp: auto means bf16 on a GPU: a CPU run folder resumed there would mix numerics."""
    import torch

    from conftest import sweep_config
    cfg = sweep_config(tiny_cifar, tmp_path / "run", rates=[0.5], baseline=False)
    run_sweep(load_config(cfg))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)      # the same folder, on a GPU machine
    with pytest.raises(EdgepruneError, match=r"other settings \(precision: None -> 'bf16'\).*finetune.amp: off"):
        run_sweep(load_config(cfg))


@pytest.mark.slow
def test_a_folder_made_under_another_identity_rule_is_not_resumed(tiny_cifar, tmp_path):
    from conftest import sweep_config
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", rates=[0.5], baseline=False))
    run_sweep(cfg)
    with ResultStore(tmp_path / "run") as store:
        assert store.get_meta("identity_version") == IDENTITY_VERSION
        store.set_meta("identity_version", IDENTITY_VERSION + 1)
    with pytest.raises(EdgepruneError, match="cannot be resumed; read it .* or start the sweep in another --out"):
        run_sweep(cfg)
