"""Layer-wise widths: uniform against global, sensitivity and latency allocation.

    python bench/allocation.py --data-dir ../shared/datasets --weights-dir ../shared/models/cifar10 \
        [--part real|rebuild|random|all] [--models resnet20 resnet56] [--quick]

(a) real: pretrained CIFAR-10 ResNets on the real CIFAR-10, l1, every allocation at
    equal MACs (50, 70, 85 % fewer) and at equal measured ONNX Runtime latency (0.5x and
    0.33x the unpruned model's: `{latency: x}` targets, read on each run's own timing of
    it; trials record their paired relative figure), each with 0 and --steps
    fine-tune steps (batch 128, lr 0.01 cosine), rebuilt (prune.reconstruct 1024)
    before. Two sweeps per model: 0 steps, then the fine-tuned one, which reads the first
    one's RUN/allocation/ (the maps are measured once). Accuracy on --test-fraction of
    the test set.
(b) rebuild: ResNet-20, sensitivity allocation at equal MACs, 0 steps, from a map
    measured with BatchNorm only against one that rebuilds the cut group's consumers:
    does rebuilding in the map pay for its cost?
(c) random: MobileNetV2 and ResNet-50 with random weights at 224 px (CIFAR images
    resized): the runtime's channel multiple, the latency model's held-out error, its
    prediction error on the allocated and uniform networks of a sweep (rates 0.1..0.8),
    and whether measured latency ever rises along the rates; once with ONNX Runtime as
    the first backend (the latency model's), once with OpenVINO.

Each part writes bench/results/allocation.json as it goes (a stopped run keeps what it
measured), with a summary read from the paired relative figures (allocation_summary.py);
`--part summary --out FILE` recomputes that summary of a stored file and runs nothing.
Runs are kept in --runs (default /tmp/edgeprune-bench-allocation); --allocations picks the
real part's allocations (keep uniform: the summary compares every allocation with it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from _common import RESULTS, cpu_name, write
from allocation_summary import summarise

RUNS = Path(tempfile.gettempdir()) / "edgeprune-bench-allocation"
ALLOCATIONS = ["uniform", "global", "sensitivity", "latency"]


def copy_inputs(source: Path, out: Path, kinds: tuple = ("sensitivity", "runtime", "latency")) -> None:
    """What another run measured (its RUN/allocation/ files of these kinds) into a run not yet
    started: the same settings read them instead of measuring them again."""
    if not (source / "allocation").is_dir() or (out / "allocation").exists():
        return
    (out / "allocation").mkdir(parents=True)
    for f in (source / "allocation").glob("*.json"):
        if f.name.startswith(tuple(f"{k}-" for k in kinds)):
            shutil.copy(f, out / "allocation" / f.name)


def sweep(cfg: dict, copy_from: Path | None = None):
    from edgeprune import load_config, load_results, run_sweep
    if copy_from is not None:
        copy_inputs(copy_from, Path(cfg["out"]))
    out = Path(cfg["out"])
    start = time.perf_counter()
    run_sweep(load_config(cfg))
    return load_results(out), time.perf_counter() - start


COLUMNS = ["allocation", "rate_label", "status", "accuracy", "accuracy_pruned", "accuracy_recalibrated",
           "accuracy_reconstructed", "macs", "mac_reduction", "params", "param_reduction", "latency_ms",
           "latency_onnxruntime_relative", "latency_openvino_ms", "latency_openvino_relative", "latency_predicted_ms",
           "latency_prediction_error", "latency_target_ms", "allocation_predicted_loss", "map_seconds", "map_calls",
           "map_recovery", "map_reduced", "allocation_seconds", "finetune_steps", "trial_seconds", "error"]


def rows(df) -> list[dict]:
    df = df.assign(allocation=[a.split("+", 1)[1] if "+" in a else ("baseline" if a == "none" else "uniform")
                               for a in df["algorithm"]])
    keep = [c for c in COLUMNS if c in df]
    return json.loads(df[keep].to_json(orient="records"))


def base_config(model: str, out: Path, args, steps: int, rates: list, allocation=ALLOCATIONS, **extra) -> dict:
    cfg = {"name": f"allocation-{model}", "out": str(out), "seed": 0,
           "models": [{"name": model, "pretrained": True}], "weights_dir": args.weights_dir, "algorithms": ["l1"],
           "allocation": allocation, "rates": rates,
           "dataset": {"name": "cifar10", "root": args.data_dir, "test_fraction": args.test_fraction},
           # prune_then_finetune: these models keep their CIFAR-10 head (nothing to adapt), and so the
           # 0-step and the fine-tuned sweep share one map (adapting would make max_steps part of its key)
           "finetune": {"epochs": 1, "max_steps": steps, "batch_size": 128, "lr": 0.01,
                        "order": "prune_then_finetune"},
           "measure": {"latency": ["onnxruntime"], "backend_accuracy": False},
           "allocate": {"widths": args.widths, "images": args.images, "max_seconds": args.map_seconds},
           "threads": args.threads}
    cfg.update(extra)
    return cfg


def real_part(args, out: dict, save) -> None:
    res = out.setdefault("real", {})
    for model in args.models:
        entry = res.setdefault(model, {})
        targets = [{"macs": m} for m in args.macs] + [{"latency": f} for f in args.latency]
        zero = args.runs / f"{model}-0steps"
        if args.maps_from:   # another run's map and channel multiple; not its latency model (maybe an older version)
            copy_inputs(args.maps_from / f"{model}-0steps", zero, ("sensitivity", "runtime"))
        for steps in [0] + args.steps:
            run = args.runs / f"{model}-{steps}steps"
            df, seconds = sweep(base_config(model, run, args, steps, targets, args.allocations),
                                copy_from=None if steps == 0 else zero)
            entry[f"steps_{steps}"] = {"seconds": seconds, "trials": rows(df)}
            save()


def rebuild_part(args, out: dict, save) -> None:
    res = out.setdefault("rebuild_in_map", {})
    for rebuild in (False, True):
        run = args.runs / f"resnet20-map-rebuild-{rebuild}"
        cfg = base_config("resnet20", run, args, 0, [{"macs": m} for m in args.macs], ["uniform", "sensitivity"],
                          measure={"latency": False})
        cfg["allocate"]["rebuild"] = rebuild
        df, seconds = sweep(cfg)
        res[f"rebuild_{str(rebuild).lower()}"] = {"seconds": seconds, "trials": rows(df)}
        save()


def random_part(args, out: dict, save) -> None:
    res = out.setdefault("random", {})
    for model in args.random_models:
        for first in ("onnxruntime", "openvino"):
            backends = [first] + [b for b in ("onnxruntime", "openvino") if b != first]
            run = args.runs / f"{model}-random-{first}"
            cfg = {"name": f"allocation-{model}-random", "out": str(run), "seed": 0,
                   "models": [{"name": model, "pretrained": False}], "algorithms": ["l1"],
                   "allocation": ["uniform", "global", "latency"], "rates": args.random_rates,
                   "dataset": {"name": "cifar10", "root": args.data_dir, "image_size": 224,
                               "train_fraction": 0.02, "test_fraction": 0.01},
                   "finetune": {"epochs": 1, "max_steps": 0, "batch_size": 32, "order": "prune_then_finetune"},
                   "prune": {"reconstruct": 0, "recalibrate_bn": 2},
                   "measure": {"latency": backends, "backend_accuracy": False, "eval_batch_size": 50},
                   "allocate": {"widths": [0.25, 0.5, 0.75], "images": args.random_images},
                   "threads": args.threads}
            df, seconds = sweep(cfg, copy_from=None if first == "onnxruntime"
                                else args.runs / f"{model}-random-onnxruntime")
            # the latency model of this pass's first backend (the folder also holds the one copied from the first pass)
            models = [json.loads(f.read_text()) for f in sorted((run / "allocation").glob("latency-*.json"))]
            runtime_files = sorted((run / "allocation").glob("runtime-*.json"))
            lm = next((m for m in models if m.get("backend") == first), {})
            profiles = json.loads(runtime_files[0].read_text()) if runtime_files else {}
            res[f"{model}-{first}"] = {
                "seconds": seconds, "trials": rows(df),
                "latency_model": {k: lm.get(k) for k in ("backend", "block", "unit", "intercept", "coefficients",
                                                         "seconds")},
                "latency_model_held_out_errors": [s["held_out"] / s["measured"] - 1 for s in lm.get("samples", [])],
                "runtime_profiles": {k: {"multiple": v["multiple"], "block": v["block"], "seconds": v["seconds"]}
                                     for k, v in profiles.items()}}
            save()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--weights-dir", required=True)
    p.add_argument("--part", choices=["real", "rebuild", "random", "all", "summary"], default="all")
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    p.add_argument("--random-models", nargs="+", default=["mobilenet_v2", "resnet50"])
    p.add_argument("--allocations", nargs="+", choices=ALLOCATIONS, default=ALLOCATIONS, help="(real part)")
    p.add_argument("--runs", type=Path, default=RUNS, help="where the run folders are kept")
    p.add_argument("--maps-from", type=Path, default=None,
                   help="(real part) read the maps of the run folders under this --runs (not measured again)")
    p.add_argument("--macs", nargs="+", type=float, default=[0.5, 0.7, 0.85])
    p.add_argument("--latency", nargs="+", type=float, default=[0.5, 0.33], help="targets, x the unpruned model")
    p.add_argument("--steps", nargs="*", type=int, default=[300], help="fine-tune steps besides 0 (none: 0 only)")
    p.add_argument("--widths", nargs="+", type=float, default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    p.add_argument("--images", type=int, default=512, help="the map's calibration images")
    p.add_argument("--map-seconds", type=float, default=1800.0)
    p.add_argument("--random-rates", nargs="+", type=float, default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    p.add_argument("--random-images", type=int, default=32)
    p.add_argument("--test-fraction", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="ResNet-20 only, one MACs and one latency target, "
                   "20 steps, 3 widths, 128 images, 10 %% of the test set (a smoke run)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.quick:
        args.models, args.random_models, args.macs, args.latency = ["resnet20"], ["mobilenet_v2"], [0.5], [0.5]
        args.steps, args.widths, args.images, args.test_fraction = [20], [0.25, 0.5, 0.75], 128, 0.1
        args.random_rates = [0.3, 0.6]
    torch.set_num_threads(args.threads)
    name = "allocation_quick" if args.quick else "allocation"
    path = Path(args.out) if args.out else RESULTS / f"{name}.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    if args.part != "summary":      # a summary keeps the file's own command, CPU and settings
        out.update(cpu=cpu_name(), command=" ".join(["python", "bench/allocation.py"] + os.sys.argv[1:]),
                   settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                             if k not in ("data_dir", "weights_dir", "out")})

    def save():
        out["summary"] = summarise(out)
        write(name, out, str(path))

    parts = {"real": real_part, "rebuild": rebuild_part, "random": random_part}
    for part in (parts if args.part == "all" else [] if args.part == "summary" else [args.part]):
        parts[part](args, out, save)
    save()


if __name__ == "__main__":
    main()
