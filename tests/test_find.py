"""`edgeprune find`: a staged search over candidates against device goals (edgeprune.search)."""
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import sweep_config
from edgeprune import load_config
from edgeprune.errors import ConfigError, EdgepruneError
from edgeprune.models import IMAGENET_MEAN, IMAGENET_STD
from edgeprune.run import RunFolder
from edgeprune.search import find, read
from edgeprune.search.schedule import plan_rungs

TINY_MACS = 2_212_160                 # tiny_models.tiny_cnn3 at 32 px


def train_tiny_checkpoint(data: Path, path: Path) -> Path:
    """tiny_cnn3 trained on the tiny data set (its classes are tinted noise): the model
    every search here should find."""
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import tiny_cnn3
    base = data / "cifar-10-batches-py"
    xs, ys = [], []
    for i in range(1, 6):
        with open(base / f"data_batch_{i}", "rb") as f:
            d = pickle.load(f)
        xs.append(torch.tensor(d["data"]).reshape(-1, 3, 32, 32))
        ys += d["labels"]
    x = torch.cat(xs).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    y = torch.tensor(ys)
    torch.manual_seed(0)
    model = tiny_cnn3()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def trained_checkpoint(tiny_cifar, tmp_path_factory) -> Path:
    return train_tiny_checkpoint(tiny_cifar, tmp_path_factory.mktemp("ckpt") / "tiny_trained.pt")


def find_config(data, out, checkpoint, **search) -> dict:
    models = [{"name": "tiny_models:tiny_cnn3", "checkpoint": str(checkpoint), "alias": "trained"},
              {"name": "tiny_models:tiny_cnn3", "pretrained": False, "alias": "untrained"}]
    spec = {"goals": {"max_macs": int(0.5 * TINY_MACS), "min_accuracy": 0.3}, "budget": {"steps": 60},
            "min_steps": 10, "reduction": 2}
    spec.update(search)
    return sweep_config(data, out, models=models, algorithms=["l1", "random"],
                        measure={"latency": False, "eval_batch_size": 100}, search=spec, plugins=["tiny_models"])


def test_a_toy_search_finds_the_trained_model_and_records_its_rungs(tiny_cifar, tmp_path, trained_checkpoint):
    result = find(load_config(find_config(tiny_cifar, tmp_path / "run", trained_checkpoint)))
    winner = result.winner
    assert winner is not None and winner["model"] == "trained", result.format()
    assert winner["accuracy"] >= 0.3 and winner["macs"] <= 0.5 * TINY_MACS
    record = read(tmp_path / "run")
    assert record.winner == winner["trial_id"] and record.ended
    assert record.rungs and record.rungs[0].candidates
    assert 0 < record.steps_spent <= 60
    trials = {t.trial_id: t for t in RunFolder(tmp_path / "run").trials()}
    for key, c in record.candidates.items():
        for before, after in zip(c.trials, c.trials[1:]):       # each rung continues the one before
            spec = trials[after].spec
            assert spec["stage"] == "rung" and spec["parent"] in (before, trials[before].metrics.get("fp32_trial_id"))
            assert trials[after].metrics["finetune_steps"] == spec["budget"]
    stopped = [c for c in record.candidates.values() if c.stopped]
    assert stopped and all(c.stopped_at is not None for c in stopped)
    assert (tmp_path / "run" / "search.db").exists()                 # Optuna's study, beside results.db
    from edgeprune import load_results
    df = load_results(tmp_path / "run")
    unpruned = df[df["algorithm"] == "none"].set_index("model")["task_weights"]
    assert bool(unpruned["trained"]) and not bool(unpruned["untrained"])   # only trained weights bound their cuts
    assert result.release is not None and (result.release.out_dir / "model.onnx").exists()
    text = result.format()
    assert "winner: trained" in text and "goal ≤" in text and "exported, verified" in text


def test_the_report_draws_the_rungs(tiny_cifar, tmp_path, trained_checkpoint):
    from edgeprune import report
    run = tmp_path / "run"
    find(load_config(find_config(tiny_cifar, run, trained_checkpoint)), export=False)
    files = report(run, tmp_path / "report")
    html = files[-1].read_text()
    assert "Search" in html and "rung 1" in html and "successive halving" in html
    assert (tmp_path / "report" / "search_rungs.png").exists()


def test_an_unreachable_goal_ends_at_the_screen_in_one_line(tiny_cifar, tmp_path, trained_checkpoint):
    cfg = find_config(tiny_cifar, tmp_path / "run", trained_checkpoint)
    cfg["search"]["goals"]["max_macs"] = 1000
    path = tmp_path / "find.yaml"
    path.write_text(yaml.safe_dump(cfg))
    p = subprocess.run([sys.executable, "-m", "edgeprune.cli", "find", str(path), "--quiet"], capture_output=True, text=True,
                       cwd=Path(__file__).parent)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "max_macs" in lines[0] and "the closest is" in lines[0], p.stderr
    trials = RunFolder(tmp_path / "run").trials()
    assert trials and not [t for t in trials if t.spec.get("stage") == "rung"]       # nothing fine-tuned


def test_a_budget_too_small_for_one_rung_says_so_before_anything_runs(tiny_cifar, tmp_path, trained_checkpoint):
    cfg = find_config(tiny_cifar, tmp_path / "run", trained_checkpoint, budget={"steps": 5})
    with pytest.raises(EdgepruneError, match="cannot pay for the first rung.*at least 20"):
        find(load_config(cfg))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("search, message", [
    ({"goals": {}, "budget": {"steps": 10}}, "give at least one"),
    ({"goals": {"max_macs": "1M"}, "budget": {"steps": 10, "minutes": 3}}, "one of them"),
    ({"goals": {"max_macs": "1M"}, "budget": {"steps": 10}, "objective": "size"}, "give an accuracy goal"),
    ({"goals": {"max_latency_ms": 2}, "budget": {"steps": 10}}, "name a backend in measure.latency"),
    ({"goals": {"max_size": "2 parsecs"}, "budget": {"steps": 10}}, "unknown unit"),
    ({"goals": {"max_acuracy_drop": 1}, "budget": {"steps": 10}}, "max_acuracy_drop"),
])
def test_bad_search_sections_are_refused_in_one_line(tiny_cifar, tmp_path, search, message):
    cfg = sweep_config(tiny_cifar, tmp_path / "run", measure={"latency": False}, search=search)
    with pytest.raises(ConfigError, match=message) as e:
        load_config(cfg)
    assert "\n" not in str(e.value)


def test_goals_read_units_as_recommend_does(tiny_cifar, tmp_path):
    cfg = load_config(sweep_config(tiny_cifar, tmp_path / "run", measure={"latency": ["onnxruntime"]},
                                   search={"goals": {"max_latency_ms": "2ms", "max_size": "500KB",
                                                     "min_accuracy": "90%", "max_accuracy_drop": 1},
                                           "budget": {"minutes": 5}}))
    g = cfg.search.goals
    assert (g.max_latency_ms, g.max_size, g.min_accuracy, g.max_accuracy_drop) == (2.0, 500_000, 0.9, 0.01)


def test_the_rung_plan_halves_and_fits_the_budget():
    plan = plan_rungs(16, 3, 50, 3000)
    assert plan.counts == (6, 2, 1) and plan.total <= 3000 and plan.steps_at(2) == 3 * plan.steps
    small = plan_rungs(40, 3, 50, 2000)
    assert small.total <= 2000 and len(small.counts) < len(plan_rungs(40, 3, 50, None).counts)


def test_a_killed_find_resumes_at_its_rung_and_trains_nothing_twice(tiny_cifar, tmp_path, trained_checkpoint,
                                                                     monkeypatch):
    import edgeprune.sweep.trial as trial_module
    real = trial_module.finetune
    calls = []

    def counting(model, loader, cfg, **kw):
        if cfg.max_steps:                            # the screen's trials fine-tune nothing
            if stop_at and len(calls) == stop_at:
                raise KeyboardInterrupt
            calls.append(cfg.max_steps)
        return real(model, loader, cfg, **kw)

    monkeypatch.setattr(trial_module, "finetune", counting)
    cfg = find_config(tiny_cifar, tmp_path / "run", trained_checkpoint, budget={"steps": 120})
    stop_at = 2
    with pytest.raises(KeyboardInterrupt):
        find(load_config(cfg), export=False)
    first = list(calls)
    assert len(first) == 2
    stop_at = None
    result = find(load_config(cfg), export=False)
    trained = [t for t in RunFolder(tmp_path / "run").trials()
               if t.status == "done" and t.spec.get("stage") == "rung" and t.spec.get("quantize", "none") == "none"]
    assert len(calls) == len(trained) > len(first)          # every rung trial trained once, over both starts
    assert sum(calls) == result.record.steps_spent
    again = list(calls)
    find(load_config(cfg), export=False)                     # done: a third start trains nothing
    assert calls == again


def test_sweep_searches_a_config_with_a_search_section(tiny_cifar, tmp_path, trained_checkpoint, capsys):
    from edgeprune.cli import main
    path = tmp_path / "find.yaml"
    path.write_text(yaml.safe_dump(find_config(tiny_cifar, tmp_path / "run", trained_checkpoint)))
    sys.path.insert(0, str(Path(__file__).parent))
    assert main(["sweep", str(path), "--quiet"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "winner: trained" in out and read(tmp_path / "run").winner is not None


def test_a_cut_whose_model_cannot_beat_the_winner_is_not_fine_tuned(tiny_cifar, tmp_path, trained_checkpoint):
    """A cut of a model trained for the task is bounded by that model's accuracy: it is
    stopped at the screen when the bound cannot beat the leader by more than the margin,
    or cannot reach the accuracy goal; random weights are never bounded."""
    import pandas as pd
    from edgeprune.search.candidates import baselines, pruned
    from edgeprune.search.reach import ceilings, out_of_reach
    from edgeprune.search.runner import Search
    from edgeprune.sweep import SilentProgress
    cfg = load_config(find_config(tiny_cifar, tmp_path / "run", trained_checkpoint,
                                  goals={"max_macs": int(0.5 * TINY_MACS), "min_accuracy": 0.5}, margin=1.0))
    s = Search(cfg, SilentProgress(), False)
    base = baselines(cfg)
    unpruned = {"macs_base": TINY_MACS, "params_base": 10_000}
    cuts = pruned(cfg, {"trained": unpruned, "untrained": unpruned})
    rows = {}
    for c in base:           # the trained model's unpruned accuracy 0.80; random weights 0.10
        trained = c.spec.model_label == "trained"
        rows[c.key] = pd.Series({"model": c.spec.model_label, "algorithm": "none", "rate_label": "0%",
                                 "accuracy": 0.80 if trained else 0.10, "task_weights": trained,
                                 "macs": TINY_MACS})
    for c in cuts:
        rows[c.key] = pd.Series({"model": c.spec.model_label, "algorithm": c.spec.algorithm, "rate_label": "50%",
                                 "accuracy": 0.6, "macs": TINY_MACS // 3})
    bounds = ceilings(base, rows)
    assert bounds == {("trained", "none"): 0.80}
    trained_cuts = [c for c in cuts if c.spec.model_label == "trained"]
    untrained_cuts = [c for c in cuts if c.spec.model_label == "untrained"]
    leader = untrained_cuts[0].key                 # a feasible leader at 0.795: the trained cuts hope for 0.80
    rows[leader] = rows[leader].copy()
    rows[leader]["accuracy"] = 0.795
    stopped = out_of_reach(s, cuts, rows, leader, bounds)
    assert set(stopped) == {c.key for c in trained_cuts}
    assert all("cannot beat untrained" in why and "80.00%" in why for why in stopped.values())
    rows[leader]["accuracy"] = 0.70                # 10 points below the bound: worth fine-tuning
    assert out_of_reach(s, cuts, rows, leader, bounds) == {}
    high = load_config(find_config(tiny_cifar, tmp_path / "run2", trained_checkpoint,
                                   goals={"max_macs": int(0.5 * TINY_MACS), "min_accuracy": 0.9}))
    unreachable = out_of_reach(Search(high, SilentProgress(), False), cuts, rows, None, bounds)
    assert set(unreachable) == {c.key for c in trained_cuts}
    assert all(why.startswith("cannot reach min_accuracy") for why in unreachable.values())


def test_equally_accurate_winners_go_to_the_faster_then_the_smaller(tiny_cifar, tmp_path, trained_checkpoint):
    import pandas as pd
    from edgeprune.search.rungs import winner
    from edgeprune.search.runner import Search
    from edgeprune.sweep import SilentProgress
    cfg = load_config(find_config(tiny_cifar, tmp_path / "run", trained_checkpoint,
                                  goals={"min_accuracy": 0.5}))
    s = Search(cfg, SilentProgress(), False)

    def row(acc, ms, size):
        return pd.Series({"accuracy": acc, "latency_ms": ms, "size_bytes": size})
    rows = {"big": row(0.9335, 1.14, 1_018_300), "fast": row(0.9335, 1.06, 792_058), "worse": row(0.93, 0.5, 1)}
    assert winner(s, rows) == "fast"
    rows["fast"] = row(0.9335, 1.14, 792_058)           # as fast: the smaller file
    assert winner(s, rows) == "fast"
    rows["fast"] = row(0.9335, float("nan"), 792_058)   # unmeasured latency loses the tie
    assert winner(s, rows) == "big"
    rows["best"] = row(0.94, 9.0, 9_000_000)            # accuracy first
    assert winner(s, rows) == "best"
