"""`edgeprune recommend`: budgets, ranking, ties, nothing fits, units, export."""
import json

import pytest
import torch

from edgeprune.cli import main
from edgeprune.errors import EdgepruneError
from edgeprune.prune.saved import load_model
from edgeprune.recommend import recommend
from edgeprune.release import EXPORT_FORMATS, release_trial
from edgeprune.units import parse_count, parse_fraction, parse_ms, parse_points, parse_size
from edgeprune.store import ResultStore

from conftest import sweep_config

M = {"params_base": 1000, "macs_base": 10_000, "base_accuracy": 0.905}


def _store(path, trials):
    """trials: (id, model, algorithm, rate, seed, status, metrics or error)."""
    with ResultStore(path) as s:
        s.add_trials([{"trial_id": t[0], "model": t[1], "algorithm": t[2], "target_kind": "channels",
                       "rate": t[3], "seed": t[4], "spec": {}} for t in trials])
        for t in trials:
            if t[5] == "pending":
                continue
            s.mark_running(t[0])
            if t[5] == "done":
                s.mark_done(t[0], {**M, **t[6]})
            elif t[5] == "failed":
                s.mark_failed(t[0], t[6])
    return path


def m(acc, params, lat, macs=None, size=None):
    return {"accuracy": acc, "params": params, "latency_ms": lat, "macs": macs or params * 10,
            "size_bytes": size or params * 4}


@pytest.fixture
def run(tmp_path):
    return _store(tmp_path / "run", [
        ("base0000", "net", "none", 0.0, 0, "done", m(0.90, 1000, 10.0)),
        ("l1a00000", "net", "l1", 0.3, 0, "done", m(0.88, 500, 6.0)),
        ("fpgm0000", "net", "fpgm", 0.3, 0, "done", m(0.88, 480, 6.5)),     # ties l1 on accuracy, smaller
        ("l1b00000", "net", "l1", 0.5, 0, "done", m(0.85, 250, 4.0)),
        ("l1c00000", "net", "l1", 0.7, 0, "done", m(0.70, 90, 2.0)),
        ("rand0000", "net", "random", 0.5, 0, "failed", "RuntimeError: boom"),
        ("l2x00000", "net", "l2", 0.5, 0, "pending", None),
    ])


def test_best_meeting_every_constraint_ranked_by_accuracy(run):
    rec = recommend(run, max_latency_ms=5, max_params=300)
    assert list(rec.ranked["trial_id"]) == ["l1b00000", "l1c00000"]
    assert rec.best["trial_id"] == "l1b00000"
    assert rec.violations == {"max_latency_ms": 3, "max_params": 3}
    text = rec.format()
    assert "2 of 5 meet it" in text and "pick: net l1 0.5 (trial l1b00000)" in text
    assert "1 failed trial(s) left out" in text and "still running" in text


def test_ties_share_a_rank_and_are_broken_by_size(run):
    rec = recommend(run, min_accuracy=0.86, include_baseline=False)
    assert list(rec.ranked["trial_id"]) == ["fpgm0000", "l1a00000"]       # 0.88 each: fewer params first
    assert list(rec.ranked["rank"]) == [1, 1]
    assert "tie: 2 trials share the best accuracy (88.00%)" in rec.format()
    # the same tie under another objective is decided by that objective
    assert recommend(run, min_accuracy=0.86, objective="latency", include_baseline=False).best["trial_id"] == \
        "l1a00000"


def test_other_objectives_and_filters(run):
    assert recommend(run, objective="params").best["trial_id"] == "l1c00000"
    assert recommend(run, objective="latency", min_accuracy=0.8).best["trial_id"] == "l1b00000"
    assert recommend(run, max_accuracy_drop=0.02).best["trial_id"] == "base0000"     # the baseline fits
    assert recommend(run, max_accuracy_drop=0.02, include_baseline=False).best["trial_id"] == "fpgm0000"
    assert recommend(run, algorithms=["l1"]).best["trial_id"] == "l1a00000"
    assert recommend(run, max_size_bytes=1000, max_macs=3000).best["trial_id"] == "l1b00000"
    with pytest.raises(EdgepruneError, match="no algorithm 'taylor'"):
        recommend(run, algorithms=["taylor"])
    with pytest.raises(EdgepruneError, match="unknown objective"):
        recommend(run, objective="speed")
    with pytest.raises(EdgepruneError, match="more than 1"):
        recommend(run, min_accuracy=90)


def test_a_budget_nothing_meets_names_the_constraint_to_blame(run):
    rec = recommend(run, max_latency_ms=3, min_accuracy=0.8)
    assert rec.best is None and rec.ranked.empty
    text = rec.format()
    assert "no trial meets the budget" in text
    # latency is what rules out the accurate ones; the fastest accurate trial is named, with the bound to give
    assert any(r.startswith("latency ≤ 3.000 ms rules out the 4 trial(s) that meet accuracy ≥ 80.00%: "
                            "--max-latency-ms 4.000 would admit net l1 0.5") for r in rec.reasons)
    assert any("--min-accuracy 0.7000 would admit net l1 0.7" in r for r in rec.reasons)
    # one constraint alone
    rec = recommend(run, max_params=50)
    assert rec.reasons == ["parameters ≤ 50 rules out all 5 trials: --max-params 90 would admit net l1 0.7 "
                           "(trial l1c00000: parameters 90, accuracy 70.00%)"]
    # two that each rule out everything: no single one is to blame
    rec = recommend(run, max_params=50, min_accuracy=0.95)
    assert any("alone rules out every trial (lowest: 90)" in r for r in rec.reasons)
    assert rec.reasons[-1].startswith("no single constraint is to blame")


def test_latency_not_measured_cannot_meet_a_latency_budget(tmp_path):
    run = _store(tmp_path / "r", [("a" * 8, "net", "l1", 0.5, 0, "done", {"accuracy": 0.8, "params": 10})])
    rec = recommend(run, max_latency_ms=100)
    assert rec.best is None and "latency was not measured" in " ".join(rec.notes)


def test_nothing_finished_is_an_error(tmp_path):
    run = _store(tmp_path / "r", [("a" * 8, "net", "l1", 0.5, 0, "pending", None)])
    with pytest.raises(EdgepruneError, match="no finished trial to recommend yet"):
        recommend(run)


def test_values_a_user_types():
    assert parse_count("1e6") == parse_count("1M") == parse_count("1000000") == 1e6
    assert parse_count("250k") == 250_000
    assert parse_size("2MB") == 2e6 and parse_size("2MiB") == 2 * 1024 ** 2 and parse_size("512") == 512
    assert parse_fraction("0.9") == parse_fraction("90%") == parse_fraction("90") == pytest.approx(0.9)
    assert parse_fraction("1pt") == pytest.approx(0.01)
    assert parse_ms("5") == 5 and parse_ms("0.005s") == 5
    # an accuracy drop is in points: 1 is one point (it once read as 100 points), 2 is two
    assert parse_points("1") == parse_points("1pt") == parse_points("1%") == pytest.approx(0.01)
    assert parse_points("2") == pytest.approx(0.02) and parse_points("0.5") == pytest.approx(0.005)
    for bad, fn in [("fast", parse_ms), ("3 parsecs", parse_count), ("1 TB", parse_size), ("120", parse_fraction)]:
        with pytest.raises(EdgepruneError):
            fn(bad)


def test_cli_prints_ranks_says_why_and_exits(run, capsys):
    assert main(["recommend", str(run), "--max-latency-ms", "5", "--max-params", "1e3", "--min-accuracy", "80%"]) == 0
    out = capsys.readouterr().out
    assert "budget: latency ≤ 5.000 ms, parameters ≤ 1,000, accuracy ≥ 80.00%" in out
    assert "l1b00000" in out and "l1c00000" not in out.split("pick")[0]
    assert main(["recommend", str(run), "--max-latency-ms", "1"]) == 1
    assert "--max-latency-ms 2.000 would admit net l1 0.7" in capsys.readouterr().out
    assert main(["recommend", str(run), "--objective", "params", "--top", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["trial_id"] for r in data["recommendations"]] == ["l1c00000", "l1b00000"]
    assert data["fitting"] == 5 and data["objective"] == "params"
    assert main(["recommend", str(run), "--max-params", "lots"]) == 2
    assert "--max-params: cannot read 'lots'" in capsys.readouterr().err


def test_recommend_across_runs(run, tmp_path):
    other = _store(tmp_path / "b" / "run", [("fast0000", "net", "l1", 0.5, 0, "done", m(0.86, 250, 1.0))])
    rec = recommend([run, other], max_latency_ms=3)
    assert rec.best["trial_id"] == "fast0000" and rec.best["run_path"] == str(other)
    assert "run" in rec.format()


# -- export: a real (tiny) sweep, its model written and loaded back without edgeprune ------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_cifar):
    from edgeprune import load_config, run_sweep
    out = tmp_path_factory.mktemp("rec") / "run"
    run_sweep(load_config(sweep_config(tiny_cifar, out, rates=[0.5], save_models=True)))
    return out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_export_writes_standalone_models_and_a_model_card(tiny_run, tmp_path, capsys):
    assert main(["recommend", str(tiny_run), "--pruned-only", "--export", str(tmp_path / "deploy")]) == 0
    err = capsys.readouterr().err
    assert "exported trial" in err and "warning" not in err
    d = tmp_path / "deploy"
    with ResultStore(tiny_run, create=False) as store:
        t = next(t for t in store.trials() if t.algorithm == "l1")
    original = load_model(t.metrics["model_path"])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = original(x)
        for got in (torch.export.load(d / "model.pt2").module()(x), torch.jit.load(str(d / "model.torchscript.pt"))(x)):
            assert torch.allclose(got, want, atol=1e-5)
    state = torch.load(d / "state_dict.pt", weights_only=True)
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == \
        t.metrics["params"]
    card = json.loads((d / "model_card.json").read_text())
    assert card["trial"]["id"] == t.trial_id
    assert card["origin"]["model"] == "resnet20" and card["origin"]["weights"] == "random initialisation"
    assert card["pruning"]["algorithm"] == "l1" and card["pruning"]["rate"] == 0.5
    assert card["metrics"]["accuracy"] == t.metrics["accuracy"] and card["metrics"]["params"] == t.metrics["params"]
    assert card["data"]["dataset"] == "cifar10" and card["finetune"]["max_steps"] == 2
    assert card["input"]["shape"] == [1, 3, 32, 32] and len(card["input"]["mean"]) == 3
    assert card["problems"] == [] and card["layer_channels"]["conv1"] == [16, 8]
    md = (d / "model_card.md").read_text()
    assert "# resnet20 · l1" in md and "torch.export.load('model.pt2').module()" in md and "cifar10" in md
    with torch.no_grad():     # edgeprune's own format: rebuilt without unpickling, the same function
        assert torch.allclose(load_model(d / "model.edgeprune.pt")(x), want, atol=1e-6)


def test_export_refuses_unfinished_or_ambiguous_trials(run, tmp_path):
    with pytest.raises(EdgepruneError, match="is pending: only finished trials"):
        release_trial(run, "l2x", tmp_path / "x", EXPORT_FORMATS)
    with pytest.raises(EdgepruneError, match="ambiguous"):
        release_trial(run, "l1", tmp_path / "x", EXPORT_FORMATS)
    with pytest.raises(EdgepruneError, match="no trial 'zzz'"):
        release_trial(run, "zzz", tmp_path / "x", EXPORT_FORMATS)
