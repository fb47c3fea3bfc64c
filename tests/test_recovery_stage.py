"""The recovery stage inside a sweep (edgeprune/sweep/recovery.py): what a trial
records of its path (pruned -> recalibrated -> rebuilt -> fine-tuned), how the
report draws it, the settings' identity and refusals, a plugin's method, and the
cascade rebuilding toward its parent. The solver itself: tests/test_recover.py."""
import pytest

from edgeprune import load_config, load_results, run_sweep
from edgeprune.recover import ReconstructReport
from edgeprune.registry import RECOVERY
from edgeprune.report import report
from edgeprune.sweep.plan import plan_trials

from conftest import sweep_config


def _cfg(data, out, prune=None, **kw):
    return sweep_config(data, out, prune={"recalibrate_bn": 2, **(prune or {})}, **kw)


def test_a_trial_records_its_recovery_path_and_the_report_draws_it(tiny_cifar, tmp_path):
    # the default count (1024 images) from a 200-image training split: all 200, no error
    run_sweep(load_config(_cfg(tiny_cifar, tmp_path / "run")))
    df = load_results(tmp_path / "run")
    assert (df["status"] == "done").all(), df["error"].tolist()
    t = df[df["algorithm"] == "l1"].iloc[0]
    for column in ("accuracy_pruned", "accuracy_recalibrated", "accuracy_reconstructed", "accuracy"):
        assert 0 <= t[column] <= 1, column
    assert t["reconstruct_images"] == 200 and t["reconstruct_layers"] > 10 and t["reconstruct_seconds"] > 0
    assert t["logit_error_reconstructed"] < t["logit_error_pruned"]
    assert t["reconstruct_method"] == "lstsq" and t["reconstruct_toward"] == "unpruned"
    files = report(tmp_path / "run")
    page = files[-1].read_text()
    assert 'id="fig-recovery"' in page and "rebuilt (least squares)" in page
    assert any(f.name == "recovery_path.png" for f in files)


def test_the_rebuild_count_joins_trial_identity_and_old_configs_keep_theirs(tiny_cifar, tmp_path):
    def ids(prune):
        return {t.trial_id for t in plan_trials(load_config(_cfg(tiny_cifar, tmp_path / "r", prune=prune)))}
    assert ids({"reconstruct": 0}) != ids({"reconstruct": 64}) != ids({"reconstruct": 128})
    assert ids({"reconstruct": 64}) == ids({"reconstruct": 64, "recovery": "lstsq"})


@pytest.mark.parametrize("prune, culprit", [({"reconstruct": -1}, "prune.reconstruct"),
                                            ({"reconstruct": 5000}, "prune.reconstruct"),
                                            ({"recovery": "lstsqq"}, "lstsq"),
                                            ({"reconstruct_from": "/no/such/folder"}, "prune.reconstruct_from")])
def test_bad_recovery_settings_are_one_line_and_write_nothing(tiny_cifar, tmp_path, capsys, prune, culprit):
    import yaml
    from edgeprune.cli import main
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(_cfg(tiny_cifar, tmp_path / "run", prune=prune)))
    assert main(["sweep", str(cfg_file)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_a_plugin_recovery_method_is_called_and_recorded(tiny_cifar, tmp_path):
    calls = []

    def shift_nothing(unpruned, pruned, images, *, kept_outputs, count, seed):
        calls.append((len(images), count, seed, bool(kept_outputs)))
        return ReconstructReport(rebuilt=[], skipped={"head": "this method rebuilds nothing"}, seconds=0.01,
                                 images=len(images), waves=0)

    RECOVERY.add("nothing", shift_nothing, plugin=True, replace=True)
    try:
        run_sweep(load_config(_cfg(tiny_cifar, tmp_path / "run", prune={"reconstruct": 32, "recovery": "nothing"})))
    finally:
        RECOVERY._items.pop("nothing", None)
    t = load_results(tmp_path / "run").query("algorithm == 'l1'").iloc[0]
    assert calls == [(32, 32, 0, True)]
    assert t["status"] == "done" and t["reconstruct_method"] == "nothing"
    assert "head" in t["warning"] and "not rebuilt" in t["warning"]     # the trial names the layer left as pruned


@pytest.mark.slow
def test_a_cascade_link_rebuilds_toward_its_parent(tiny_cifar, tmp_path):
    run_sweep(load_config(_cfg(tiny_cifar, tmp_path / "run", prune={"reconstruct": 64}, rates=[0.3, 0.5],
                               strategy="cascade")))
    df = load_results(tmp_path / "run").query("algorithm == 'l1'").sort_values("rate")
    assert (df["status"] == "done").all(), df["error"].tolist()
    assert list(df["reconstruct_toward"]) == ["unpruned", "parent"]
    assert (df["logit_error_reconstructed"] < df["logit_error_pruned"]).all()


def test_a_macs_target_with_distillation_is_rebuilt_too(tiny_cifar, tmp_path):
    # the target's search counts structure only; the trial it settles on is rebuilt, then distilled
    run_sweep(load_config(_cfg(tiny_cifar, tmp_path / "run", prune={"reconstruct": 32}, rates=[{"macs": 0.5}],
                               finetune={"epochs": 1, "max_steps": 2, "batch_size": 32, "distill": True})))
    t = load_results(tmp_path / "run").query("algorithm == 'l1'").iloc[0]
    assert t["status"] == "done", t["error"]
    assert abs(t["mac_reduction"] - 0.5) < 0.05
    assert t["reconstruct_images"] == 32 and t["logit_error_reconstructed"] < t["logit_error_pruned"]
