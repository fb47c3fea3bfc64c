"""How much accuracy does a short fine-tune recover? Pretrained CIFAR-10 ResNet-56.

    python bench/accuracy_recovery.py --checkpoint ../shared/models/cifar10/resnet56-4bfd9763.th \
        [--data-dir ../shared/datasets] [--epochs 3] [--train-fraction 0.2]

Prunes the pretrained ResNet-56 to remove about 40 % and about 50 % of its MACs
(global MAC targets) with l1 and fpgm, fine-tunes each with the same budget with
and without distillation from the unpruned model, and evaluates on the full test
set after every epoch. Literature at full budgets (hundreds of epochs): FPGM
93.59 -> 93.26 at 1.70x fewer MACs; Torch-Pruning group L1 93.53 -> 92.93 at
2.12x; DepGraph 93.53 -> 93.46 at 2.11x.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from _common import write
from edgeprune.config import DatasetConfig, FinetuneConfig
from edgeprune.data import BatchLoader, load_dataset, resolve_normalization
from edgeprune.measure import count_macs, evaluate
from edgeprune.models import create_model
from edgeprune.prune import prune_model
from edgeprune.train import finetune


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--train-fraction", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--algorithms", nargs="*", default=["l1", "fpgm"])
    ap.add_argument("--macs", type=float, nargs="*", default=[0.4, 0.5])
    ap.add_argument("--distill", choices=["both", "off", "on"], default="both")
    ap.add_argument("--out")
    args = ap.parse_args()

    data = load_dataset(DatasetConfig(root=args.data_dir, train_fraction=args.train_fraction))
    teacher = create_model("resnet56", 10, checkpoint=args.checkpoint).eval()
    mean, std = resolve_normalization("auto", teacher.edgeprune_meta, data.train)
    test = BatchLoader(data.test, 1000, mean, std, channels_last=True)
    train = BatchLoader(data.train, 128, mean, std, shuffle=True, augment=True, channels_last=True)
    teacher.to(memory_format=torch.channels_last)
    base_acc = evaluate(teacher, test)
    macs0 = count_macs(teacher.to(memory_format=torch.contiguous_format), 32)
    print(f"unpruned resnet56: {base_acc:.4f}, {macs0 / 1e6:.1f} MMACs", flush=True)
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, batch_size=128, warmup_epochs=0.1)
    distill_modes = {"both": [False, True], "off": [False], "on": [True]}[args.distill]
    rows = []
    for algorithm in args.algorithms:
        for goal in args.macs:
            pruned0 = prune_model(teacher, algorithm, goal, 32, kind="macs")
            macs = count_macs(pruned0.model, 32)
            acc_pruned = evaluate(pruned0.model, test)
            for distill in distill_modes:
                model = copy.deepcopy(pruned0.model)
                curve = []
                t0 = time.perf_counter()
                finetune(model, train, cfg, seed=0, teacher=teacher if distill else None,
                         on_epoch=lambda e, m: curve.append(evaluate(m, test)))
                row = {"algorithm": algorithm, "mac_target": goal, "mac_reduction": 1 - macs / macs0,
                       "mac_speedup": macs0 / macs, "layer_rate": pruned0.layer_rate, "distill": distill,
                       "accuracy_pruned": acc_pruned, "accuracy_per_epoch": curve,
                       "accuracy": curve[-1] if curve else acc_pruned, "finetune_seconds": time.perf_counter() - t0}
                rows.append(row)
                print(f"{algorithm:5s} MACs -{row['mac_reduction']:.1%} (x{row['mac_speedup']:.2f}) distill={distill}:"
                      f" pruned {acc_pruned:.4f} -> " + " -> ".join(f"{a:.4f}" for a in curve), flush=True)
    write("accuracy_recovery", {"model": "resnet56", "base_accuracy": base_acc, "epochs": args.epochs,
                                "train_fraction": args.train_fraction, "lr": args.lr, "rows": rows,
                                "literature": {"fpgm": "93.59 -> 93.26 at 1.70x", "tp_group_l1": "93.53 -> 92.93 at 2.12x",
                                               "depgraph": "93.53 -> 93.46 at 2.11x"}}, args.out)


if __name__ == "__main__":
    main()
