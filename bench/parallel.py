"""Serial vs Ray: a sweep of 8 CPU-bound trials on this machine, measured in one run.

    python bench/parallel.py [--steps 40] [--out bench/results/parallel.json]

Trials: resnet20 (random weights) x {l1, l2, fpgm, random} x {0.3, 0.5}, each
fine-tuned for --steps steps on a synthetic CIFAR-format dataset. Runs:
  serial-1t  local executor, 1 torch thread (the work one Ray worker does)
  serial-2t  local executor, 2 torch threads (one process using both cores)
  ray-2x1t   Ray, 2 workers of 1 CPU each
and the same 8 trials with no fine-tuning and no latency measurement, local vs
Ray, to isolate Ray's per-trial overhead; Ray's start-up is timed on its own.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_cifar, sweep_config  # noqa: E402

from edgeprune import load_config, load_results, run_sweep  # noqa: E402


def sweep(tmp: Path, data: Path, name: str, steps: int, **kw) -> tuple[float, list]:
    cfg = sweep_config(data, tmp / name, algorithms=["l1", "l2", "fpgm", "random"], rates=[0.3, 0.5],
                       baseline=False, **kw)
    cfg["finetune"] = {"epochs": 100, "max_steps": steps, "batch_size": 64}
    cfg["measure"] = {"latency": steps > 0, "latency_repeats": 5, "eval_batch_size": 200}
    t0 = time.perf_counter()
    run_sweep(load_config(cfg))
    wall = time.perf_counter() - t0
    df = load_results(tmp / name)
    assert (df["status"] == "done").all(), df[["status", "error"]]
    return wall, df["trial_seconds"].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", default="bench/results/parallel.json")
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    tmp = Path(tempfile.mkdtemp(prefix="edgeprune-parallel-"))
    data = make_cifar(tmp / "data", n_train=1000, n_test=200)
    try:
        results = {}
        results["serial_1t"] = sweep(tmp, data, "serial1", args.steps, threads=1)
        results["serial_2t"] = sweep(tmp, data, "serial2", args.steps, threads=2)

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=300_000_000,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
        startup = time.perf_counter() - t0
        results["ray_2x1t"] = sweep(tmp, data, "ray", args.steps, executor="ray", ray={"cpus_per_trial": 1})
        empty_ray = sweep(tmp, data, "ray-empty", 0, executor="ray")
        ray.shutdown()
        empty_local = sweep(tmp, data, "local-empty", 0, threads=1)

        s1, s2, r = (results[k][0] for k in ("serial_1t", "serial_2t", "ray_2x1t"))
        out = {
            "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "ray": ray.__version__,
                        "python": platform.python_version()},
            "trials": 8, "finetune_steps": args.steps,
            "wall_seconds": {"serial_1thread": s1, "serial_2threads": s2, "ray_2workers_1thread": r},
            "mean_trial_seconds": {k: sum(v[1]) / len(v[1]) for k, v in results.items()},
            "speedup_ray_vs_serial_1thread": s1 / r,
            "speedup_ray_vs_serial_2threads": s2 / r,
            "ray_startup_seconds": startup,
            "ray_overhead_per_trial_seconds": (empty_ray[0] - empty_local[0]) / 8,
            "empty_trials_wall_seconds": {"local": empty_local[0], "ray": empty_ray[0]},
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
