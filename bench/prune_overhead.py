"""The pruning step: edgeprune vs raw Torch-Pruning, same model and criterion.

    python bench/prune_overhead.py [--size 224] [--repeats 2]

Seven torchvision models (random weights) at rate 0.5. Raw Torch-Pruning: a
MetaPruner with its own importance closest to each criterion (l1/l2:
MagnitudeImportance(p, group_reduction="first", normalizer=None); fpgm: its
FPGMImportance), classifier ignored, pruning a fresh copy in place. edgeprune:
prune_model(..., inplace=True) on a fresh copy. Copies are made outside the timer.
"""
from __future__ import annotations

import argparse
import copy
import gc
import time

import torch
import torch_pruning as tp

from _common import write
from edgeprune.models import classifier_name, create_model
from edgeprune.prune import prune_model

MODELS = ["googlenet", "efficientnet_b0", "densenet121", "vgg16", "mobilenet_v2", "alexnet", "resnet50"]


def tp_importance(algorithm: str):
    if algorithm == "fpgm":
        return tp.importance.FPGMImportance()
    return tp.importance.MagnitudeImportance(p=1 if algorithm == "l1" else 2, group_reduction="first",
                                             normalizer=None)


def raw_tp(model, algorithm: str, size: int) -> float:
    example = torch.randn(1, 3, size, size)
    head = model.get_submodule(classifier_name(model))
    t0 = time.perf_counter()
    pruner = tp.pruner.MetaPruner(model, example, importance=tp_importance(algorithm), pruning_ratio=0.5,
                                  ignored_layers=[head], root_module_types=[torch.nn.Conv2d])
    pruner.step()
    return time.perf_counter() - t0


def ours(model, algorithm: str, size: int) -> float:
    t0 = time.perf_counter()
    prune_model(model, algorithm, 0.5, input_size=size, inplace=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--algorithms", nargs="*", default=["l1", "l2", "fpgm"])
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        base = create_model(name, 10, pretrained=False).eval()
        for algorithm in args.algorithms:
            times = {"torch_pruning": [], "edgeprune": []}
            for _ in range(args.repeats):      # interleaved, so drift hits both alike
                for label, fn in (("torch_pruning", raw_tp), ("edgeprune", ours)):
                    m = copy.deepcopy(base)
                    times[label].append(fn(m, algorithm, args.size))
                    del m
                    gc.collect()
            t_tp, t_ep = min(times["torch_pruning"]), min(times["edgeprune"])
            rows.append({"model": name, "algorithm": algorithm, "torch_pruning_s": t_tp, "edgeprune_s": t_ep,
                         "ratio": t_ep / t_tp})
            print(f"{name:16s} {algorithm:5s} torch-pruning {t_tp:7.2f}s  edgeprune {t_ep:6.2f}s  "
                  f"x{t_ep / t_tp:.2f}", flush=True)
        del base
        gc.collect()
    path = write("prune_overhead", {"size": args.size, "rate": 0.5, "repeats": args.repeats, "rows": rows,
                                    "aim": "ratio <= 1.1 for l1/l2; edgeprune fpgm on vgg16 < 2 s"}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
