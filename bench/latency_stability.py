"""Does a latency figure stay put while the machine is busy?

    python bench/latency_stability.py --data-dir ../shared/datasets [--times 8] [--backend onnxruntime]
        [--out bench/results/latency_stability.json]

One model (ResNet-20, l1-pruned at 0.5, random weights, 32 px, 1 thread, batch 1) is
timed --times times as a sweep times it (adaptive repeats to a ±3 % CI, each call
alternating with the unpruned model), first on the idle machine, then while an
`edgeprune sweep` fine-tunes on both cores. Per phase: the median latencies, the
relative figures (pruned / unpruned, paired calls), and their spread
((max - min) / median). The aim: the relative figure within 5 % of its idle value
during the busy sweep; the raw median is shown beside it for comparison.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

from edgeprune.config.sections import DeployConfig, MeasureConfig  # noqa: E402
from edgeprune.deploy.backends import make_backends  # noqa: E402
from edgeprune.deploy.files import TrialArtifacts  # noqa: E402
from edgeprune.models import create_model  # noqa: E402
from edgeprune.prune import prune_model  # noqa: E402


def measure(backend, files, times: int) -> dict:
    medians, relative = [], []
    for _ in range(times):
        m = backend.time(files, False)
        medians.append(m.median_ms)
        relative.append(m.extra["relative"])
    return {"median_ms": medians, "relative": relative,
            "median_spread": (max(medians) - min(medians)) / statistics.median(medians),
            "relative_spread": (max(relative) - min(relative)) / statistics.median(relative)}


def busy_sweep(tmp: Path, data_dir: str) -> subprocess.Popen:
    cfg = {"name": "busy", "out": str(tmp / "busy"), "models": [{"name": "resnet56", "pretrained": False}],
           "algorithms": ["l1", "fpgm", "random"], "rates": [0.2, 0.4, 0.6, 0.8],
           "dataset": {"name": "cifar10", "root": data_dir, "test_fraction": 0.2},
           "finetune": {"epochs": 1, "max_steps": 400, "batch_size": 128}, "measure": {"latency": False},
           "threads": os.cpu_count()}
    (tmp / "busy.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.Popen([sys.executable, "-m", "edgeprune.cli", "sweep", str(tmp / "busy.yaml"), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="CIFAR-10 for the busy sweep")
    ap.add_argument("--times", type=int, default=8)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.manual_seed(0)
    base = create_model("resnet20", 10, pretrained=False).eval()
    pruned = prune_model(base, "l1", 0.5, 32).model.eval()
    images = torch.randn(4, 3, 32, 32)
    files = {k: TrialArtifacts(m, 32, DeployConfig(parity_images=4), k, check_images=lambda s: images,
                               calibration=lambda s: []) for k, m in (("unpruned", base), ("pruned", pruned))}
    files["pruned"].reference = files["unpruned"]
    backend, = make_backends(MeasureConfig(latency=[args.backend], latency_threads=1).latency_backends())
    idle = measure(backend, files["pruned"], args.times)
    print(f"idle: {idle}", flush=True)
    with tempfile.TemporaryDirectory(prefix="edgeprune-stability-") as tmp:
        proc = busy_sweep(Path(tmp), args.data_dir)
        try:
            time.sleep(20)               # past its start-up: fine-tuning on every core
            busy = measure(backend, files["pruned"], args.times)
            still_running = proc.poll() is None
        finally:
            proc.kill()
            proc.wait()
    print(f"busy: {busy}", flush=True)
    ref_idle, ms_idle = statistics.median(idle["relative"]), statistics.median(idle["median_ms"])
    summary = {
        "relative_max_deviation_busy_vs_idle": max(abs(r / ref_idle - 1) for r in busy["relative"]),
        "median_ms_max_deviation_busy_vs_idle": max(abs(m / ms_idle - 1) for m in busy["median_ms"]),
        "sweep_ran_throughout": still_running, "aim": "relative within 5 % of its idle value during the sweep"}
    path = write("latency_stability", {"backend": args.backend, "model": "resnet20 l1 0.5 (random weights, 32 px)",
                                       "times": args.times, "idle": idle, "busy": busy, "summary": summary}, args.out)
    print(summary, f"\nwrote {path}")


if __name__ == "__main__":
    main()
