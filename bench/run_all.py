"""Run every benchmark, one after another; each writes bench/results/<name>.json.

    python bench/run_all.py --data-dir ../shared/datasets --models-dir ../shared/models/cifar10 [--quick]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--models-dir", default="../shared/models/cifar10")
    ap.add_argument("--quick", action="store_true", help="smaller budgets (a smoke run)")
    args = ap.parse_args()
    quick = args.quick
    runs = [
        ["seed_grid.py"] + (["--models", "resnet50", "--rates", "0.3", "0.5"] if quick else []),
        ["finetune_throughput.py", "--data-dir", args.data_dir] + (["--steps", "5"] if quick else []),
        ["prune_overhead.py"] + (["--models", "resnet50", "--repeats", "1"] if quick else []),
        ["latency_vs_macs.py"] + (["--models", "resnet50", "--rates", "0.5"] if quick else []),
        ["parallel.py"] + (["--steps", "5"] if quick else []),
        ["accuracy_recovery.py", "--checkpoint", f"{args.models_dir}/resnet56-4bfd9763.th", "--data-dir",
         args.data_dir] + (["--epochs", "0.05", "--algorithms", "l1", "--macs", "0.4", "--distill", "off"]
                           if quick else []),
        ["search_efficiency.py", "--data-dir", args.data_dir, "--models-dir", args.models_dir]
        + (["--quick"] if quick else []),
        ["backends.py", "--data-dir", args.data_dir, "--models-dir", args.models_dir]
        + (["--steps", "5", "--models", "resnet50", "--size", "64"] if quick else []),
        ["latency_stability.py", "--data-dir", args.data_dir] + (["--times", "2"] if quick else []),
        ["torchvision_coverage.py", "--size", "64"] + (["--models", "resnet18", "mobilenet_v2"] if quick else []),
    ]
    failed = []
    for cmd in runs:
        print(f"== {' '.join(cmd)}", flush=True)
        if subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]]) != 0:
            failed.append(cmd[0])
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
