"""Hand-made run folders for the report and recommend tests: a results store with
trials in every state and plausible metrics, written without training anything."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Optional

import yaml

from edgeprune.store import ResultStore

# model -> (params, MACs, base accuracy, latency ms, layers: name -> channels)
MODELS = {
    "resnet20": (269_722, 40_551_040, 0.9166, 5.2,
                 {"conv1": 16, **{f"layer{s}.{b}.conv{c}": 16 * 2 ** (s - 1)
                                  for s in (1, 2, 3) for b in (0, 1, 2) for c in (1, 2)}}),
    "mobilenet_v2": (2_236_682, 6_000_000, 0.935, 9.0,
                     {"features.0.0": 32, **{f"features.{i}.conv.0.0": 96 + 8 * i for i in range(1, 17)},
                      "features.18.0": 1280}),
    "vgg11": (9_231_114, 153_000_000, 0.92, 14.0, {f"features.{i}": c for i, c in
                                                   zip((0, 3, 6, 8, 11, 13, 16, 18), (64, 128, 256, 256, 512, 512, 512, 512))}),
    "resnet56": (855_770, 125_000_000, 0.937, 15.0, {f"layer{s}.{b}.conv1": 16 * 2 ** (s - 1)
                                                      for s in (1, 2, 3) for b in range(9)}),
    "googlenet": (5_600_000, 1_500_000_000, 0.94, 30.0, {f"inception{i}.branch{b}.conv": 64
                                                         for i in ("3a", "3b", "4a", "4b", "4c") for b in range(4)}),
}
ALGO_PENALTY = {"l1": 1.0, "l2": 0.95, "fpgm": 0.9, "random": 1.6, "taylor": 0.85}


def trial_id(*parts) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def metrics_for(model: str, algorithm: str, kind: str, rate: float, seed: int, latency: bool = True) -> dict:
    params0, macs0, acc0, lat0, layers = MODELS[model]
    keep = 1.0 if algorithm == "none" else (1 - rate if kind == "channels" else (1 - rate) ** 0.5)
    noise = ((seed * 7919 + int(rate * 1000)) % 13 - 6) / 2000
    acc = acc0 if algorithm == "none" else acc0 - ALGO_PENALTY[algorithm] * 0.5 * rate ** 2 + noise
    params = int(params0 * keep ** 2)
    macs = int(macs0 * keep ** 2)
    m = {"accuracy": round(acc, 4), "accuracy_pruned": round(acc * (1 - rate) if algorithm != "none" else acc, 4),
         "base_accuracy": acc0 + 0.001, "params": params, "params_base": params0,
         "param_reduction": 1 - params / params0, "macs": macs, "macs_base": macs0, "mac_reduction": 1 - macs / macs0,
         "size_bytes": params * 4 + 4000, "prune_seconds": 0.1, "finetune_seconds": 10.0, "finetune_steps": 50,
         "finetune_epochs": 1.0, "finetune_losses": [2.0, 1.5], "channel_ratio": 1 - keep, "layer_rate": 1 - keep,
         "input_size": 32, "trial_seconds": 12.0}
    if latency:
        m.update(latency_ms=round(lat0 * (0.3 + 0.7 * keep ** 2) + seed * 0.01, 4),
                 latency_p90_ms=lat0 * (0.35 + 0.7 * keep ** 2), latency_threads=1)
    if algorithm != "none":
        m["layer_channels"] = {n: [c, max(1, round(c * keep))] for n, c in layers.items()}
    return m


def make_run(path: Path, models: Iterable[str] = ("resnet20",), algorithms: Iterable[str] = ("l1", "fpgm"),
             rates: Iterable = (0.3, 0.5, 0.7), seeds: Iterable[int] = (0,), baseline: bool = True,
             failed: Optional[str] = None, unfinished: int = 0, latency: bool = True, name: str = "fake",
             epochs: float = 1.0, overrides: Optional[dict] = None) -> Path:
    """A run folder with a store and config.yaml. `rates` items are a channel rate or
    (kind, rate); `failed` names an algorithm whose trials fail; the last
    `unfinished` trials are left one running and the rest pending."""
    path = Path(path)
    plan = []
    for seed in seeds:
        for model in models:
            if baseline:
                plan.append((model, "none", "channels", 0.0, seed))
            for algo in algorithms:
                for r in rates:
                    kind, rate = r if isinstance(r, tuple) else ("channels", r)
                    plan.append((model, algo, kind, float(rate), seed))
    rows = [{"trial_id": trial_id(name, *p), "model": p[0], "algorithm": p[1], "target_kind": p[2], "rate": p[3],
             "seed": p[4], "spec": {"model": {"name": p[0], "pretrained": False, "checkpoint": None, "alias": None},
                                    "algorithm": p[1], "target_kind": p[2], "rate": p[3], "seed": p[4],
                                    "settings": {"finetune": {"epochs": epochs}}}} for p in plan]
    with ResultStore(path) as store:
        store.add_trials(rows)
        n = len(rows)
        for i, (row, p) in enumerate(zip(rows, plan)):
            if i >= n - unfinished:
                if i == n - unfinished:
                    store.mark_running(row["trial_id"])
                continue
            store.mark_running(row["trial_id"])
            if failed and p[1] == failed:
                store.mark_failed(row["trial_id"], f"RuntimeError: cannot prune {p[0]} with {failed}\nTraceback "
                                                   "(most recent call last): <details>")
            else:
                m = metrics_for(*p, latency=latency)
                if epochs != 1.0 and p[1] != "none":
                    m["accuracy"] = round(min(0.99, m["accuracy"] + 0.02 * (epochs - 1)), 4)
                store.mark_done(row["trial_id"], m)
    config = {"name": name, "out": str(path), "seed": 0,
              "models": [{"name": m, "pretrained": False, "checkpoint": None, "alias": None} for m in models],
              "algorithms": list(algorithms),
              "rates": [{"kind": r[0], "value": r[1]} if isinstance(r, tuple) else {"kind": "channels", "value": r}
                        for r in rates],
              "dataset": {"name": "cifar10", "root": "data", "train_fraction": 1.0, "test_fraction": 1.0},
              "finetune": {"epochs": epochs, "lr": 0.01, "optimizer": "sgd", "batch_size": 128},
              "measure": {"latency": latency, "latency_threads": 1, "latency_repeats": 20}}
    for k, v in (overrides or {}).items():
        config[k] = v
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path
