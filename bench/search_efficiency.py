"""Search efficiency: the whole accuracy-vs-rate curve for the price of a few fine-tunes.

Pretrained ResNet-56 on the real CIFAR-10, l1 and fpgm at rates 0.1..0.8, four ways,
every one at the same fine-tune steps per rate (so the same total):
  (a) independent            every rate from the unpruned model (the published protocol)
  (b) cascade                each rate from the previous rate's fine-tuned model
  (c) cascade + distillation the unpruned model as the teacher
  (d) (c) without BatchNorm recalibration after pruning
Then one refine step of (c)'s top 3 (its accuracy-vs-MACs Pareto front), with the
accuracy gained per minute. Per way: accuracy and MACs per rate, wall time, and the
area under accuracy vs MAC reduction (trapezoids from the baseline at 0).

    python bench/search_efficiency.py --data-dir ../shared/datasets --models-dir ../shared/models/cifar10
        [--steps 60] [--test-fraction 0.2] [--refine-epochs 0.5] [--quick] [--out bench/results/search_efficiency.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

from edgeprune import load_config, load_results, run_sweep  # noqa: E402
from edgeprune.sweep import refine  # noqa: E402

WAYS = {
    "a_independent": {"strategy": "independent"},
    "b_cascade": {"strategy": "cascade"},
    "c_cascade_distill": {"strategy": "cascade", "finetune": {"distill": True}},
    "d_cascade_distill_no_bn_recal": {"strategy": "cascade", "finetune": {"distill": True},
                                      "prune": {"recalibrate_bn": 0}},
}


def config(out: Path, args, way: dict) -> dict:
    finetune = {"epochs": 1, "max_steps": args.steps, "batch_size": 128, "lr": 0.01, **way.get("finetune", {})}
    return {"name": out.name, "out": str(out), "seed": 0,
            "models": [{"name": "resnet56", "pretrained": True}], "weights_dir": args.models_dir,
            "algorithms": args.algorithms, "rates": args.rates, "strategy": way["strategy"],
            "dataset": {"name": "cifar10", "root": args.data_dir, "test_fraction": args.test_fraction},
            "finetune": finetune, "prune": {"recalibrate_bn": 20, **way.get("prune", {})},
            "measure": {"latency": False}, "threads": torch.get_num_threads()}


def curve_area(df, algorithm: str) -> float:
    """Area under accuracy (points) vs MAC reduction, from the baseline (0, its accuracy)."""
    base = df[df["algorithm"] == "none"]
    pts = df[df["algorithm"] == algorithm].sort_values("mac_reduction")
    x = np.concatenate([[0.0], pts["mac_reduction"].to_numpy()])
    y = 100 * np.concatenate([[base["accuracy"].iloc[0]], pts["accuracy"].to_numpy()])
    return float(np.trapezoid(y, x) if hasattr(np, "trapezoid") else np.trapz(y, x))


def _plain(values) -> list:
    return [None if isinstance(v, float) and np.isnan(v) else v for v in values]


def summarise(df, seconds: float, args) -> dict:
    out = {"wall_seconds": seconds, "baseline_accuracy": float(df[df["algorithm"] == "none"]["accuracy"].iloc[0]),
           "steps_per_rate": args.steps, "total_finetune_steps": int(df["finetune_steps"].sum()),
           "by_algorithm": {}}
    for algo in args.algorithms:
        d = df[df["algorithm"] == algo].sort_values("rate")
        out["by_algorithm"][algo] = {
            "rates": d["rate"].tolist(), "accuracy": d["accuracy"].round(4).tolist(),
            "accuracy_pruned": d["accuracy_pruned"].round(4).tolist(),
            "accuracy_recalibrated": _plain(d["accuracy_recalibrated"].round(4).tolist()),
            "macs": d["macs"].astype(int).tolist(), "mac_reduction": d["mac_reduction"].round(4).tolist(),
            "params": d["params"].astype(int).tolist(), "chain_steps": d["chain_steps"].astype(int).tolist(),
            "area_accuracy_vs_mac_reduction": round(curve_area(df, algo), 3)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--models-dir", required=True, help="folder with resnet56-4bfd9763.th")
    p.add_argument("--steps", type=int, default=60, help="fine-tune steps of 128 images per rate (default 60)")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    p.add_argument("--algorithms", nargs="+", default=["l1", "fpgm"])
    p.add_argument("--refine-epochs", type=float, default=0.5)
    p.add_argument("--ways", nargs="+", default=list(WAYS))
    p.add_argument("--quick", action="store_true", help="2 rates, 10 steps: a smoke run")
    p.add_argument("--out", default="bench/results/search_efficiency.json")
    args = p.parse_args(argv)
    if args.quick:
        args.rates, args.steps, args.test_fraction, args.refine_epochs = [0.3, 0.6], 10, 0.05, 0.05
    result = {"machine": machine(), "setup": {k: v for k, v in vars(args).items() if k not in ("out",)},
              "ways": {}}
    work = Path(tempfile.mkdtemp(prefix="edgeprune-search-"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.ways:
        run = work / name
        t0 = time.perf_counter()
        run_sweep(load_config(config(run, args, WAYS[name])))
        result["ways"][name] = summarise(load_results(run), time.perf_counter() - t0, args)
        print(name, json.dumps(result["ways"][name]["by_algorithm"], indent=None)[:400], flush=True)
        out.write_text(json.dumps(result, indent=1))
    ind, cas = result["ways"].get("a_independent"), result["ways"].get("b_cascade")
    if ind and cas:
        result["cascade_minus_independent_points"] = {
            algo: [round(100 * (c - i), 2) for c, i in zip(cas["by_algorithm"][algo]["accuracy"],
                                                           ind["by_algorithm"][algo]["accuracy"])]
            for algo in args.algorithms}
    source = "c_cascade_distill" if "c_cascade_distill" in result["ways"] else next(iter(result["ways"]))
    run = work / source
    before = load_results(run)
    t0 = time.perf_counter()
    ids = refine(run, top=3, epochs=args.refine_epochs)
    minutes = (time.perf_counter() - t0) / 60
    after = load_results(run).set_index("trial_id")
    rows = []
    for tid in ids:
        r = after.loc[tid]
        src = before.set_index("trial_id").loc[r["parent"]]
        gain = 100 * (r["accuracy"] - src["accuracy"])
        rows.append({"trial": f"{r['algorithm']} {r['rate']:g}", "from_accuracy": round(float(src["accuracy"]), 4),
                     "to_accuracy": round(float(r["accuracy"]), 4), "gain_points": round(gain, 2),
                     "steps_added": int(r["finetune_steps"]), "chain_steps": int(r["chain_steps"])})
    result["refine"] = {"from": source, "epochs": args.refine_epochs, "minutes": round(minutes, 2), "trials": rows,
                        "points_per_minute": round(sum(x["gain_points"] for x in rows) / max(minutes, 1e-9), 3)}
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result.get("cascade_minus_independent_points"), indent=None))
    print(json.dumps(result["refine"], indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
