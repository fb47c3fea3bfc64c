"""`edgeprune find` against a grid sweep, at equal fine-tune compute.

    python bench/find.py --data-dir ../shared/datasets --weights-dir ../shared/models/cifar10 \
        [--part latency|size|all] [--steps-per-point 100] [--quick]

The candidates: the published CIFAR-10 ResNet-20/32/44/56, l1 and fpgm, uniform and
latency allocation, fp32 and int8 (ONNX Runtime, 1 thread, batch 1).

(a) grid: a sweep of every candidate at --rates, each point fine-tuned
    --steps-per-point steps (batch 128, lr 0.01 cosine), rebuilt before.
(b) find: the same candidates, `search: {goals: ..., budget: {steps: B}}` with B the
    grid's fine-tune steps in all (equal compute).

Goal 1 (--part latency): at most --latency-share x the last model's (ResNet-56's) ONNX Runtime latency,
timed just before (its median, the same backend and settings as the trials), the
highest accuracy. Goal 2 (--part size): the smallest file within 1 point of the
unpruned ResNet-56 (its accuracy from the grid's baseline trial).

Recorded: the best accuracy (or size) meeting the goal, wall time and fine-tune steps
of each way, and find's rungs. Writes bench/results/find.json as it goes; run folders
are kept in --runs (default /tmp/edgeprune-bench-find), so a stopped run resumes.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from _common import RESULTS, cpu_name, write

RUNS = Path(tempfile.gettempdir()) / "edgeprune-bench-find"
MODELS = ["resnet20", "resnet32", "resnet44", "resnet56"]


def unpruned_ms(model_name: str, weights_dir, cfg) -> float:
    """The unpruned model's median latency on the config's first latency backend, as trials time it."""
    import numpy as np

    from edgeprune.measure.timing import percentile_stats, time_calls
    from edgeprune.models import create_model
    from edgeprune.registry import LATENCY_BACKENDS
    model = create_model(model_name, 10, pretrained=True, weights_dir=weights_dir).eval()
    spec = cfg.measure.latency_backends()[0]
    backend = LATENCY_BACKENDS.get(spec.backend)(spec)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        torch.onnx.export(model, torch.randn(1, 3, 32, 32), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"])
        session = backend.load(path)
        x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        times, _ = time_calls(lambda: backend.call(session, x), warmup=20, repeats=300)
    return percentile_stats(times)["median_ms"]


def candidates_config(args, out: Path, steps: int) -> dict:
    return {"name": out.name, "out": str(out), "seed": 0,
            "models": [{"name": m, "pretrained": True} for m in args.models], "weights_dir": args.weights_dir,
            "algorithms": args.algorithms, "allocation": args.allocation, "rates": args.rates,
            "quantize": args.quantize,
            "dataset": {"name": "cifar10", "root": args.data_dir, "test_fraction": args.test_fraction},
            "finetune": {"epochs": 1, "max_steps": steps, "batch_size": 128, "lr": 0.01},
            "measure": {"latency": ["onnxruntime"], "backend_accuracy": False},
            "allocate": {"widths": [0.25, 0.5, 0.75], "images": args.map_images},
            "threads": args.threads}


def summary(run: Path, seconds: float, **goal) -> dict:
    """What the run offers for the goal (recommend's answer), and what it cost."""
    from edgeprune import load_results
    from edgeprune.recommend import recommend
    df = load_results(run)
    objective = goal.pop("objective", "accuracy")
    rec = recommend(run, objective=objective, top=3, **goal)
    best = rec.best
    pick = None if best is None else {k: (None if str(best.get(k)) == "nan" else best.get(k)) for k in
                                      ("trial_id", "model", "algorithm", "rate_label", "accuracy", "latency_ms",
                                       "size_bytes", "params", "macs")}
    trained = df[df["quantize"].fillna("none") == "none"] if "quantize" in df else df   # an int8 row repeats its twin's
    return {"best": json.loads(json.dumps(pick, default=float)), "seconds": seconds,
            "finetune_steps": int(trained["finetune_steps"].fillna(0).sum()) if "finetune_steps" in df else 0,
            "trials": int((df["status"] == "done").sum()), "failed": int((df["status"] == "failed").sum())}


def grid(args, out: dict, save) -> Path:
    from edgeprune import load_config, run_sweep
    run = RUNS / "grid"
    entry = out.setdefault("grid", {})
    start = time.perf_counter()
    run_sweep(load_config(candidates_config(args, run, args.steps_per_point)))
    # wall time over every start (a resumed grid adds what this start took)
    entry["seconds"] = entry.get("seconds", entry.get("seconds_this_start", 0.0)) + time.perf_counter() - start
    entry["seconds_this_start"] = time.perf_counter() - start
    entry["settings"] = {"rates": args.rates, "steps_per_point": args.steps_per_point}
    save()
    return run


def find_run(args, name: str, search: dict, out: dict, save) -> dict:
    from edgeprune import load_config
    from edgeprune.search import find
    run = RUNS / name
    cfg = candidates_config(args, run, 0)
    cfg["search"] = search
    start = time.perf_counter()
    result = find(load_config(cfg))
    seconds = time.perf_counter() - start
    r = result.record
    entry = {"seconds_this_start": seconds, "search": search, "ended": r.ended, "steps_spent": r.steps_spent,
             "search_seconds": r.seconds, "plan": r.plan, "winner": r.winner,
             "rungs": [{"rung": x.rung, "steps": x.steps, "candidates": [r.candidates[k].label for k in x.candidates],
                        "went_on": [r.candidates[k].label for k in x.promoted]} for x in r.rungs],
             "candidates": {c.label: {"trials": c.trials, "stopped": c.stopped, "stopped_at": c.stopped_at,
                                      "scores": c.scores} for c in r.candidates.values()},
             "printed": result.format()}
    out[name] = entry
    save()
    return entry


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--weights-dir", required=True)
    p.add_argument("--part", choices=["latency", "size", "all"], default="all")
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--algorithms", nargs="+", default=["l1", "fpgm"])
    p.add_argument("--allocation", nargs="+", default=["uniform", "latency"])
    p.add_argument("--quantize", nargs="+", default=["none", "int8"])
    p.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    p.add_argument("--steps-per-point", type=int, default=100, help="the grid's fine-tune steps per trial")
    p.add_argument("--latency-share", type=float, default=0.5, help="goal 1: x ResNet-56's latency")
    p.add_argument("--map-images", type=int, default=256)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="ResNet-20/32, l1, uniform, rates 0.3 0.6, 20 steps a "
                   "point, 10 %% of the test set: a smoke run")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.quick:
        args.models, args.algorithms, args.allocation, args.rates = ["resnet20", "resnet32"], ["l1"], ["uniform"], \
            [0.3, 0.6]
        args.steps_per_point, args.test_fraction = 20, 0.1
    torch.set_num_threads(args.threads)
    name = "find_quick" if args.quick else "find"
    global RUNS
    RUNS = RUNS / name
    path = Path(args.out) if args.out else RESULTS / f"{name}.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out.update(cpu=cpu_name(), command=" ".join(["python", "bench/find.py"] + os.sys.argv[1:]),
               settings={k: v for k, v in vars(args).items() if k not in ("data_dir", "weights_dir", "out")})

    def save():
        write(name, out, str(path))

    from edgeprune import load_config
    probe = load_config(candidates_config(args, RUNS / "probe", 0))
    if "resnet56_ms" not in out:
        out["resnet56_ms"] = unpruned_ms(args.models[-1], args.weights_dir, probe)
    goal_ms = round(args.latency_share * out["resnet56_ms"], 4)
    out["latency_goal_ms"] = goal_ms
    run = grid(args, out, save)
    budget = out["grid"]["budget_steps"] = summary(run, 0.0)["finetune_steps"]
    if args.part in ("latency", "all"):
        out["grid"]["latency_goal"] = summary(run, out["grid"]["seconds"], max_latency_ms=goal_ms)
        find_run(args, "find-latency", {"goals": {"max_latency_ms": goal_ms}, "budget": {"steps": budget}}, out, save)
        out["find-latency"]["answer"] = summary(RUNS / "find-latency", out["find-latency"]["seconds_this_start"],
                                                max_latency_ms=goal_ms)
        save()
    if args.part in ("size", "all"):
        from edgeprune import load_results
        df = load_results(run)
        reference = args.models[-1]           # the largest: ResNet-56 unless --models says otherwise
        base = df[(df["model"] == reference) & (df["algorithm"] == "none")]["accuracy"]
        floor = round(float(base.iloc[0]) - 0.01, 4)
        out["size_goal_min_accuracy"] = floor
        out["grid"]["size_goal"] = summary(run, out["grid"]["seconds"], min_accuracy=floor,
                                           objective="size")
        find_run(args, "find-size", {"goals": {"min_accuracy": floor}, "objective": "size",
                                     "budget": {"steps": budget}, "rates": args.rates}, out, save)
        out["find-size"]["answer"] = summary(RUNS / "find-size", out["find-size"]["seconds_this_start"],
                                             min_accuracy=floor, objective="size")
        save()
    save()


if __name__ == "__main__":
    main()
