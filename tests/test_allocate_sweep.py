"""Allocated trials in a sweep: budgets met on the pruned networks, an unreachable
budget fails its trial with one line, the run's sensitivity map is measured once
and read (not measured) on resume, and the same seed gives the same widths when
it is measured again."""
from __future__ import annotations

import json
import shutil

import pytest

from edgeprune import load_config, run_sweep
from edgeprune.config import SweepConfig
from edgeprune.store import ResultStore
from edgeprune.sweep import allocation_measure
from edgeprune.sweep.plan import plan_trials

from conftest import force_status, sweep_config


def _config(data, out) -> SweepConfig:
    return load_config(sweep_config(
        data, out, algorithms=["l1"], allocation=["sensitivity", "global"], baseline=False,
        rates=[{"macs": 0.5}, {"params": 0.5}, {"macs": 0.99}],
        finetune={"epochs": 1, "max_steps": 0, "batch_size": 32},
        prune={"reconstruct": 0},
        allocate={"widths": [0.25, 0.5], "images": 32},
        measure={"latency": False, "eval_batch_size": 100}))


def _trials(run) -> dict:
    with ResultStore(run, readonly=True) as store:
        return {(t.spec["allocation"], t.spec["target_kind"], t.spec["rate"]): t for t in store.trials()}


def test_uniform_trials_keep_their_ids_beside_allocated_ones(tiny_cifar, tmp_path):
    plain = load_config(sweep_config(tiny_cifar, tmp_path / "a", rates=[0.3, {"macs": 0.5}]))
    both = load_config(sweep_config(tiny_cifar, tmp_path / "a", rates=[0.3, {"macs": 0.5}],
                                    allocation=["uniform", "sensitivity", "latency"],
                                    allocate={"widths": [0.5], "images": 64}))
    ids = [s.trial_id for s in plan_trials(plain)]
    planned = plan_trials(both)
    assert [s.trial_id for s in planned if s.allocation == "uniform"] == ids
    allocated = [s for s in planned if s.is_allocated]
    assert len(allocated) == 4 and not set(s.trial_id for s in allocated) & set(ids)
    assert {s.method for s in allocated} == {"l1+sensitivity", "l1+latency"}


@pytest.mark.slow
def test_allocated_sweep_meets_budgets_measures_the_map_once_and_resumes(tiny_cifar, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run_sweep(_config(tiny_cifar, run))
    trials = _trials(run)
    for allocation in ("sensitivity", "global"):
        for kind, key in (("macs", "mac_reduction"), ("params", "param_reduction")):
            t = trials[(allocation, kind, 0.5)]
            assert t.status == "done", t.error
            assert t.metrics[key] == pytest.approx(0.5, abs=0.01), (allocation, kind)
        unreachable = trials[(allocation, "macs", 0.99)]          # the narrowest widths keep more than 1 %
        assert unreachable.status == "failed"
        assert "\n" not in unreachable.error.strip()
        assert "cannot be met" in unreachable.error and "reaches" in unreachable.error

    maps = sorted((run / "allocation").glob("sensitivity-*.json"))
    assert len(maps) == 1                                          # one model x algorithm: one map
    sensitivity = [t for k, t in trials.items() if k[0] == "sensitivity" and t.status == "done"]
    assert sorted(t.metrics["map_measured"] for t in sensitivity) == [False, True]
    assert len({t.metrics["map_calls"] for t in sensitivity}) == 1

    # resume: a trial left running is run again from the stored map, never measuring one
    chosen = trials[("sensitivity", "macs", 0.5)]
    before = maps[0].read_bytes()

    def no_measuring(*args, **kwargs):
        raise AssertionError("the sensitivity map was measured again")

    monkeypatch.setattr(allocation_measure, "measure_sensitivity", no_measuring)
    force_status(run, chosen.trial_id, "running")
    run_sweep(_config(tiny_cifar, run))
    again = _trials(run)[("sensitivity", "macs", 0.5)]
    assert again.status == "done" and again.finished_at != chosen.finished_at
    assert again.metrics["map_measured"] is False
    assert again.metrics["allocation_widths"] == chosen.metrics["allocation_widths"]
    assert maps[0].read_bytes() == before
    monkeypatch.undo()

    # same seed, map measured afresh in another run folder: the same map, the same widths
    other = tmp_path / "other"
    shutil.copytree(run, other)
    shutil.rmtree(other / "allocation")
    force_status(other, chosen.trial_id, "running")
    run_sweep(_config(tiny_cifar, other))
    fresh = _trials(other)[("sensitivity", "macs", 0.5)]
    assert fresh.metrics["map_measured"] is True
    assert fresh.metrics["allocation_widths"] == chosen.metrics["allocation_widths"]
    remeasured = json.loads(sorted((other / "allocation").glob("sensitivity-*.json"))[0].read_text())
    assert {k: remeasured[k] for k in ("kept", "loss", "base_loss")} == \
        {k: json.loads(before)[k] for k in ("kept", "loss", "base_loss")}

    # the report draws the run's map (group x width -> loss added)
    from edgeprune import report
    files = report(run, tmp_path / "report")
    assert (tmp_path / "report" / "sensitivity_maps.png").exists()
    html = files[-1].read_text()
    assert "Sensitivity maps" in html and "layer" in html


def test_an_allocator_that_misses_its_budget_fails_its_trial_in_one_line(tiny_cifar, tmp_path):
    """A trial is never done over its budget: a plugin allocator that keeps every
    channel fails its trial with a line that names it."""
    from edgeprune.plugins import register_allocator
    register_allocator("keeps_everything_test", lambda problem: {}, needs_scores=False)
    run = tmp_path / "run"
    run_sweep(load_config(sweep_config(
        tiny_cifar, run, algorithms=["l1"], allocation=["keeps_everything_test"], baseline=False,
        rates=[{"macs": 0.5}], finetune={"epochs": 1, "max_steps": 0, "batch_size": 32}, prune={"reconstruct": 0},
        measure={"latency": False, "eval_batch_size": 100})))
    (t,) = _trials(run).values()
    assert t.status == "failed" and "\n" not in t.error
    assert "keeps_everything_test allocation missed the budget of macs=0.5" in t.error
    assert "choose another allocation" in t.error
