"""Does a latency figure stay put while the machine is busy?

    python bench/latency_stability.py --data-dir ../shared/datasets [--times 16] [--backend onnxruntime]
        [--out bench/results/latency_stability.json]

One model (ResNet-20, l1-pruned at 0.5, random weights, 32 px, 1 thread, batch 1) is
timed --times times as a sweep times it (adaptive repeats to a ±3 % CI, each call
paired with one of the unpruned model in ABBA order), first on the idle machine, then
while an `edgeprune sweep` fine-tunes on both cores. Per phase: the median latencies,
the 10th-percentile ones, the relative figures (pruned / unpruned: the ratio of their
10th-percentile times), the reference's medians, and their spread ((max - min) /
median). The aim: the relative figure within 5 % of its idle value during the busy
sweep; the raw figures are shown beside it for comparison.
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
from edgeprune.measure.backends import make_backends  # noqa: E402
from edgeprune.deploy.files import TrialArtifacts  # noqa: E402
from edgeprune.models import create_model  # noqa: E402
from edgeprune.prune import prune_model  # noqa: E402


def measure(backend, files, times: int) -> dict:
    got = {"median_ms": [], "p10_ms": [], "relative": [], "reference_ms": []}
    for _ in range(times):
        m = backend.time(files, False)
        got["median_ms"].append(m.median_ms)
        for key in ("p10_ms", "relative", "reference_ms"):
            got[key].append(m.extra[key])
    for key in list(got):
        got[f"{key}_spread"] = (max(got[key]) - min(got[key])) / statistics.median(got[key])
    return got


def estimators(backend, files, times: int, pairs: int = 300) -> dict:
    """The same model pair timed raw, `pairs` pairs per measurement, summed up by the
    figure edgeprune stored before (median of each pair's ratio, AB order) and by the
    one it stores now (ratio of the 10th-percentile times, ABBA order): a baseline
    from the same run."""
    import numpy as np
    x = backend.inputs(files)
    sessions = [backend.session(backend.artifact(files, False))]
    sessions.append(backend.load(backend.artifact(files.reference, False)))
    calls = [lambda s=s: backend.call(s, x) for s in sessions]
    got = {"median_of_pair_ratios_ab": [], "p10_ratio_abba": []}
    for _ in range(times):
        for order, key in (("ab", "median_of_pair_ratios_ab"), ("abba", "p10_ratio_abba")):
            t = [[], []]
            for i in range(pairs):
                for which in ((0, 1) if order == "ab" or i % 2 == 0 else (1, 0)):
                    start = time.perf_counter()
                    calls[which]()
                    t[which].append(time.perf_counter() - start)
            a, b = np.array(t[0]), np.array(t[1])
            got[key].append(float(np.median(a / b)) if order == "ab"
                            else float(np.percentile(a, 10, method="nearest") / np.percentile(b, 10, method="nearest")))
    return got


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
    ap.add_argument("--times", type=int, default=16)
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
    idle_raw = estimators(backend, files["pruned"], args.times)
    print(f"idle: {idle}", flush=True)
    with tempfile.TemporaryDirectory(prefix="edgeprune-stability-") as tmp:
        proc = busy_sweep(Path(tmp), args.data_dir)
        try:
            time.sleep(20)               # past its start-up: fine-tuning on every core
            busy = measure(backend, files["pruned"], args.times)
            busy_raw = estimators(backend, files["pruned"], args.times)
            still_running = proc.poll() is None
        finally:
            proc.kill()
            proc.wait()
    print(f"busy: {busy}", flush=True)
    summary = {f"{key}_max_deviation_busy_vs_idle": max(abs(v / statistics.median(idle[key]) - 1) for v in busy[key])
               for key in ("relative", "median_ms", "p10_ms", "reference_ms")}
    summary["estimators_max_deviation_busy_vs_idle"] = {
        key: max(abs(v / statistics.median(idle_raw[key]) - 1) for v in busy_raw[key]) for key in idle_raw}
    summary.update(sweep_ran_throughout=still_running, method="each call paired with one of the unpruned model "
                   "(ABBA); relative = ratio of their 10th-percentile times",
                   aim="relative within 5 % of its idle value during the sweep")
    path = write("latency_stability", {"backend": args.backend, "model": "resnet20 l1 0.5 (random weights, 32 px)",
                                       "times": args.times, "idle": idle, "busy": busy, "estimators": {"idle": idle_raw, "busy": busy_raw},
                                       "summary": summary}, args.out)
    print(summary, f"\nwrote {path}")


if __name__ == "__main__":
    main()
