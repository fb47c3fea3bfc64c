"""Efficient search: cascades (each rate from the previous rate's fine-tuned model),
BatchNorm recalibration, and refining the chosen trials further."""
import pytest
import torch

import edgeprune.sweep.trial as trial_module
from edgeprune import load_config, load_results, run_sweep
from edgeprune.cli import main
from edgeprune.recommend import recommend

from conftest import force_status, sweep_config


def _cascade(data, out, **kw):
    base = dict(algorithms=["l1", "fpgm"], rates=[0.6, 0.3, 0.45], strategy="cascade", plugins=["counting_plugin"],
                finetune={"epochs": 1, "max_steps": 3, "batch_size": 32, "optimizer": "counting_sgd"},
                prune={"recalibrate_bn": 2})
    base.update(kw)
    return load_config(sweep_config(data, out, **base))


@pytest.fixture
def counted(tmp_path, monkeypatch):
    path = tmp_path / "finetunes.txt"
    monkeypatch.setenv("EDGEPRUNE_COUNT_FILE", str(path))
    return lambda: len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_cascade_links_have_the_independent_shapes_and_count_steps(tiny_cifar, tmp_path, counted):
    run_sweep(_cascade(tiny_cifar, tmp_path / "cascade"))
    run_sweep(_cascade(tiny_cifar, tmp_path / "independent", strategy="independent"))
    cas, ind = load_results(tmp_path / "cascade"), load_results(tmp_path / "independent")
    assert (cas["status"] == "done").all() and (cas["strategy"] == "cascade").all()
    for algo in ("l1", "fpgm"):
        chain = cas[cas["algorithm"] == algo].sort_values("rate")
        assert list(chain["rate"]) == [0.3, 0.45, 0.6]
        assert chain["parent"].iloc[0] is None and list(chain["parent"].iloc[1:]) == list(chain["trial_id"].iloc[:2])
        assert list(chain["chain_steps"]) == [3, 6, 9]                     # own steps plus the parents'
        same = ind[ind["algorithm"] == algo].sort_values("rate")
        assert list(chain["params"]) == list(same["params"]) and list(chain["macs"]) == list(same["macs"])
    assert cas["accuracy_recalibrated"].notna().sum() == 6                # pruned trials, after recalibration
    assert counted() == 2 * 7                                               # 7 fine-tunes a sweep, none repeated


@pytest.mark.slow
def test_cascade_on_ray_gives_the_local_results(tiny_cifar, tmp_path):
    cols = ["trial_id", "parent", "accuracy", "accuracy_pruned", "params", "chain_steps"]
    run_sweep(_cascade(tiny_cifar, tmp_path / "local", threads=1))
    run_sweep(_cascade(tiny_cifar, tmp_path / "ray", executor="ray", threads=1, ray={"num_cpus": 2}))
    local, ray = (load_results(tmp_path / d)[cols].sort_values("trial_id").reset_index(drop=True)
                  for d in ("local", "ray"))
    assert local.equals(ray)


@pytest.mark.slow
def test_resume_restarts_a_chain_at_its_first_unfinished_link(tiny_cifar, tmp_path, counted):
    cfg = _cascade(tiny_cifar, tmp_path / "run", algorithms=["l1"], baseline=False)
    run_sweep(cfg)
    chain = load_results(tmp_path / "run").sort_values("rate")
    before = counted()
    for trial_id in chain["trial_id"].iloc[1:]:            # a crash after the first link
        force_status(tmp_path / "run", trial_id, "pending")
    run_sweep(cfg)
    assert counted() == before + 2                         # the first link is not trained again
    again = load_results(tmp_path / "run").sort_values("rate")
    assert (again["status"] == "done").all() and list(again["params"]) == list(chain["params"])


@pytest.mark.slow
def test_a_failed_link_fails_its_descendants_and_other_chains_go_on(tiny_cifar, tmp_path, monkeypatch):
    real = trial_module.prune_model

    def fails_at_045(model, algorithm, rate, *args, **kw):
        if algorithm == "l1" and rate == 0.45:
            raise RuntimeError("the graph broke")
        return real(model, algorithm, rate, *args, **kw)

    monkeypatch.setattr(trial_module, "prune_model", fails_at_045)
    run_sweep(_cascade(tiny_cifar, tmp_path / "run"))
    df = load_results(tmp_path / "run").set_index(["algorithm", "rate"])
    assert df.loc[("l1", 0.3), "status"] == "done" and df.loc[("l1", 0.45), "status"] == "failed"
    failed_id = df.loc[("l1", 0.45), "trial_id"]
    assert df.loc[("l1", 0.6), "error"] == f"parent {failed_id} failed: RuntimeError: the graph broke " \
                                           f"(at test_search.py:{fails_at_045.__code__.co_firstlineno + 2})"
    assert (df.xs("fpgm", level="algorithm")["status"] == "done").all()


@pytest.mark.slow
def test_refine_continues_the_front_and_recommend_ranks_by_the_best_budget(tiny_cifar, tmp_path, capsys):
    run = tmp_path / "run"
    run_sweep(load_config(sweep_config(tiny_cifar, run, rates=[0.3, 0.6])))
    assert main(["refine", str(run), "--top", "1", "--epochs", "2", "--quiet"]) == 0
    df = load_results(run)
    refined = df[df["stage"] == "refine"]
    assert len(refined) == 1 and refined.iloc[0]["status"] == "done"
    source = df.set_index("trial_id").loc[refined.iloc[0]["parent"]]
    r = refined.iloc[0]
    assert r["params"] == source["params"] and r["chain_steps"] == source["chain_steps"] + r["finetune_steps"]
    assert r["finetune_steps"] > source["finetune_steps"]          # 2 epochs, not the sweep's max_steps cap
    rec = recommend(run, include_baseline=False)
    assert refined.iloc[0]["trial_id"] in set(rec.candidates["trial_id"])
    assert source.name not in set(rec.candidates["trial_id"])        # ranked by its refinement
    assert source.name in set(recommend(run, include_baseline=False, all_budgets=True).candidates["trial_id"])
    assert main(["show", str(run)]) == 0 and "refine +2ep" in capsys.readouterr().out
    assert main(["report", str(run)]) == 0
    # the plain sweep still resumes the folder: refinements are not the config's missing trials
    run_sweep(load_config(sweep_config(tiny_cifar, run, rates=[0.3, 0.6])))


@pytest.mark.slow
def test_a_copied_run_folder_is_refined_where_it_lies(tiny_cifar, tmp_path):
    """config.yaml names the folder a run was made in; a copy is refined (and resumed) in
    the copy, and the original is left as it was."""
    import shutil
    run, copy = tmp_path / "run", tmp_path / "copy"
    run_sweep(load_config(sweep_config(tiny_cifar, run, rates=[0.5])))
    shutil.copytree(run, copy)
    assert main(["refine", str(copy), "--top", "1", "--epochs", "0.5", "--quiet"]) == 0
    assert len(load_results(copy)) == len(load_results(run)) + 1
