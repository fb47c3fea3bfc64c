"""Deployment benchmark: the figures of the deployment issue, one command.

    python bench/deploy.py --data-dir ../shared/datasets \\
        --checkpoint ../shared/models/cifar10/resnet20-12fca82f.th [--parts cifar models agent]

Parts (each writes its own JSON into bench/results/, rewritten as it goes):
  cifar   deploy_cifar.json   the pretrained CIFAR-10 ResNet-20, L1 at rates 0.3 and 0.5 (and unpruned):
                              fp32 vs int8 (onnxruntime static PTQ) accuracy, size, onnxruntime latency;
                              one epoch of fine-tuning with vs without distillation. Runs real sweeps
                              (edgeprune.run_sweep) into bench/runs/.
  models  deploy_models.json  seven torchvision models (random weights, 1000 classes, 224x224), unpruned
                              vs L1 at rate 0.5: onnxruntime latency (1 thread) beside the MAC reduction.
  agent   deploy_agent.json   `edgeprune agent` on loopback vs the same model timed in this process:
                              measured latency and the round trip's overhead.

Latencies are medians at batch 1 with 1 onnxruntime thread; every comparison's
baseline is measured in the same run on the same machine (quote ratios).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import torch  # noqa: E402

RESULTS = _ROOT / "bench" / "results"
SEVEN = ["googlenet", "efficientnet_b0", "densenet121", "vgg16", "mobilenet_v2", "alexnet", "resnet50"]


def machine() -> dict:
    import onnxruntime
    from edgeprune.agent.bench import device_info
    info = device_info()
    return {"cpu": info["cpu"], "cores": info["cores"], "usable_cores": info["usable_cores"],
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(), "date": _dt.datetime.now().isoformat(timespec="seconds")}


def write(name: str, payload: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(payload, indent=1, default=str))


# -- part 1: ResNet-20 on CIFAR-10 ---------------------------------------------------

def part_cifar(args) -> dict:
    from edgeprune import load_config, load_results, run_sweep
    common = {
        "seed": 0,
        "models": [{"name": "resnet20", "checkpoint": str(Path(args.checkpoint).resolve()), "alias": "resnet20"}],
        "algorithms": ["l1"], "rates": [0.3, 0.5], "quantize": ["none", "int8"],
        "dataset": {"name": "cifar10", "root": args.data_dir},
        "finetune": {"epochs": args.epochs, "batch_size": 128, "lr": 0.01, "warmup_epochs": 0.05},
        "measure": {"latency": ["onnxruntime", "torch"], "latency_threads": 1, "latency_repeats": args.repeats,
                    "latency_warmup": 10},
        "deploy": {"calibration_images": 256},
        "threads": args.threads,
        "save_models": True,        # the fine-tuned models, for the int8 variants below
    }
    out: dict = {"machine": machine(), "config": common, "runs": {}}
    runs = {"cross_entropy": dict(common, out=str(_ROOT / "bench/runs/deploy_r20_ce")),
            "distill": dict(common, out=str(_ROOT / "bench/runs/deploy_r20_kd"), baseline=False,
                            finetune=dict(common["finetune"], distill={"temperature": 4.0, "weight": 0.5}))}
    for name, cfg in runs.items():
        t0 = time.perf_counter()
        run_dir = run_sweep(load_config(cfg))
        df = load_results(run_dir)
        cols = [c for c in ["trial_id", "model", "algorithm", "rate", "quantize", "status", "error", "accuracy",
                            "accuracy_fp32", "accuracy_pruned", "base_accuracy", "size_bytes", "onnx_size_bytes",
                            "params", "macs", "mac_reduction", "latency_onnxruntime_ms",
                            "latency_onnxruntime_p90_ms", "latency_torch_ms", "onnx_max_abs_diff", "distilled",
                            "finetune_seconds", "finetune_steps", "calibration_images", "trial_seconds"]
                if c in df]
        out["runs"][name] = {"seconds": time.perf_counter() - t0, "run_dir": str(run_dir),
                             "trials": json.loads(df[cols].to_json(orient="records"))}
        write("deploy_cifar.json", out)
    out["summary"] = summarize_cifar(out["runs"])
    write("deploy_cifar.json", out)
    out["int8_variants"] = int8_variants(args, out["runs"]["cross_entropy"]["trials"])
    write("deploy_cifar.json", out)
    return out


def int8_variants(args, trials: list[dict]) -> list[dict]:
    """The saved fp32 models of the cross-entropy run quantized with 8-bit and with 7-bit
    (reduce_range) weights: onnxruntime test accuracy and latency of each, same images."""
    from edgeprune.config import DatasetConfig
    from edgeprune.data import BatchLoader, load_dataset
    from edgeprune.deploy import export_onnx, quantize_onnx
    from edgeprune.measure import onnx_accuracy
    from edgeprune.agent.bench import benchmark_onnx
    from edgeprune.sweep import trial_model
    data = load_dataset(DatasetConfig(root=args.data_dir))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    test = BatchLoader(data.test, 500, mean, std)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="edgeprune-variants-"))
    for t in trials:
        if t["quantize"] != "none":
            continue
        model = trial_model(_ROOT / "bench/runs/deploy_r20_ce", t["trial_id"])
        check = next(iter(BatchLoader(data.test, 64, mean, std)))[0]
        fp32 = export_onnx(model, tmp / "m.onnx", 32, check_inputs=check, dynamic_batch=True).path
        row = {"rate": t["rate"], "fp32_accuracy_onnxruntime": onnx_accuracy(fp32, test),
               "fp32_ort_ms": benchmark_onnx(str(fp32), repeats=args.repeats, warmup=10)["median_ms"]}
        for tag, rr in [("int8_8bit", False), ("int8_7bit", True)]:
            calib = BatchLoader(data.train, 64, mean, std, shuffle=True, seed=0)
            q = quantize_onnx(fp32, tmp / f"{tag}.onnx", calib, calibration_images=256, reduce_range=rr)
            row[f"{tag}_accuracy"] = onnx_accuracy(q.path, test)
            row[f"{tag}_bytes"] = q.size_bytes
            row[f"{tag}_ort_ms"] = benchmark_onnx(str(q.path), repeats=args.repeats, warmup=10)["median_ms"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def summarize_cifar(runs: dict) -> list[dict]:
    rows = []
    ce = {(t["algorithm"], t["rate"], t["quantize"]): t for t in runs["cross_entropy"]["trials"]}
    kd = {(t["algorithm"], t["rate"], t["quantize"]): t for t in runs.get("distill", {}).get("trials", [])}
    for (algo, rate, q), t in sorted(ce.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if q != "none":
            continue
        i8 = ce.get((algo, rate, "int8"), {})
        row = {"rate": rate, "algorithm": algo,
               "fp32_accuracy": t.get("accuracy"), "int8_accuracy": i8.get("accuracy"),
               "fp32_onnx_bytes": t.get("onnx_size_bytes"), "int8_onnx_bytes": i8.get("size_bytes"),
               "fp32_ort_ms": t.get("latency_onnxruntime_ms"), "int8_ort_ms": i8.get("latency_onnxruntime_ms"),
               "fp32_torch_ms": t.get("latency_torch_ms")}
        if row["int8_onnx_bytes"] and row["fp32_onnx_bytes"]:
            row["int8_size_ratio"] = row["int8_onnx_bytes"] / row["fp32_onnx_bytes"]
        if row["int8_ort_ms"] and row["fp32_ort_ms"]:
            row["int8_speedup"] = row["fp32_ort_ms"] / row["int8_ort_ms"]
        k = kd.get((algo, rate, "none"))
        if k:
            row.update(finetune_ce_accuracy=t.get("accuracy"), finetune_distill_accuracy=k.get("accuracy"),
                       distill_gain_points=100 * (k["accuracy"] - t["accuracy"]),
                       accuracy_before_finetune=t.get("accuracy_pruned"),
                       distill_int8_accuracy=kd.get((algo, rate, "int8"), {}).get("accuracy"),
                       ce_finetune_seconds=t.get("finetune_seconds"), kd_finetune_seconds=k.get("finetune_seconds"))
        rows.append(row)
    return rows


# -- part 2: seven torchvision models ----------------------------------------------------

def part_models(args) -> dict:
    from edgeprune.deploy import export_onnx
    from edgeprune.measure import count_macs, count_params
    from edgeprune.models import create_model
    from edgeprune.prune import prune_model
    torch.set_num_threads(args.threads)
    out: dict = {"machine": machine(), "settings": {"rate": 0.5, "algorithm": "l1", "input_size": 224,
                                                    "ort_threads": 1, "weights": "random", "num_classes": 1000,
                                                    "repeats": args.big_repeats}, "models": []}
    tmp = Path(tempfile.mkdtemp(prefix="edgeprune-bench-"))
    for name in args.models:
        row: dict = {"model": name}
        try:
            torch.manual_seed(0)
            model = create_model(name, 1000, pretrained=False).eval()
            t0 = time.perf_counter()
            pruned = prune_model(model, "l1", 0.5, 224).model.eval()
            row["prune_seconds"] = time.perf_counter() - t0
            paths = {}
            for tag, m in [("unpruned", model), ("pruned", pruned)]:
                paths[tag] = tmp / f"{name}-{tag}.onnx"
                rep = export_onnx(m, paths[tag], 224, check_images=4, atol=1e-4)
                row[tag] = {"macs": count_macs(m, 224), "params": count_params(m), "onnx_bytes": rep.size_bytes,
                            "parity_max_abs_diff": rep.max_abs_diff, "export_seconds": rep.seconds}
            for tag, lat in paired_latency(paths, args.big_repeats).items():
                row[tag].update(ort_median_ms=lat["median_ms"], ort_p90_ms=lat["p90_ms"], ort_min_ms=lat["min_ms"])
            for path in paths.values():
                path.unlink()
            u, p = row["unpruned"], row["pruned"]
            row.update(mac_reduction=1 - p["macs"] / u["macs"], param_reduction=1 - p["params"] / u["params"],
                       latency_reduction=1 - p["ort_median_ms"] / u["ort_median_ms"],
                       speedup=u["ort_median_ms"] / p["ort_median_ms"])
        except Exception as e:  # one model failing does not stop the others
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        out["models"].append(row)
        print(json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)}), flush=True)
        write("deploy_models.json", out)
    return out


def paired_latency(paths: dict, repeats: int, warmup: int = 2) -> dict:
    """onnxruntime latency (1 thread, batch 1) of several models timed in alternation,
    run by run, so that a change in the machine's load hits each of them alike."""
    from edgeprune.agent.bench import input_feeds as _input_feeds
    from edgeprune.deploy.onnx_session import make_session
    from edgeprune.measure.timing import percentile_stats
    sessions = {tag: make_session(str(p), threads=1) for tag, p in paths.items()}
    feeds = {tag: _input_feeds(s, 1, None) for tag, s in sessions.items()}
    for _ in range(warmup):
        for tag, s in sessions.items():
            s.run(None, feeds[tag])
    times = {tag: [] for tag in sessions}
    for _ in range(repeats):
        for tag, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[tag])
            times[tag].append((time.perf_counter() - t0) * 1000)
    return {tag: percentile_stats(t) for tag, t in times.items()}


# -- part 3: the agent on loopback --------------------------------------------------------

def part_agent(args) -> dict:
    from edgeprune.agent.bench import benchmark_onnx
    from edgeprune.deploy import export_onnx, quantize_onnx
    from edgeprune.measure import AgentClient
    from edgeprune.models import create_model
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="edgeprune-agent-bench-"))
    r20 = create_model("resnet20", 10, checkpoint=args.checkpoint).eval()
    files = {"resnet20_fp32": export_onnx(r20, tmp / "r20.onnx", 32).path}
    calib = [torch.randn(64, 3, 32, 32) for _ in range(4)]
    files["resnet20_int8"] = quantize_onnx(files["resnet20_fp32"], tmp / "r20.int8.onnx", calib).path
    torch.manual_seed(0)
    files["resnet50_fp32"] = export_onnx(create_model("resnet50", 1000, pretrained=False).eval(),
                                         tmp / "r50.onnx", 224, check_images=2).path
    token = secrets.token_urlsafe(24)
    env = dict(os.environ, EDGEPRUNE_AGENT_TOKEN=token)
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune.agent", "--port", "0", "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_ROOT)
    out: dict = {"machine": machine(), "rounds": args.agent_rounds, "models": []}
    try:
        line = proc.stdout.readline()
        url = line.split("listening on ")[1].split()[0]
        client = AgentClient(url, token=token)
        out["device"] = client.info()
        for name, path in files.items():
            repeats = 20 if "resnet50" in name else 200
            local, remote = [], []
            for _ in range(args.agent_rounds):   # alternate, so drifting machine load hits both alike
                t0 = time.perf_counter()
                r = benchmark_onnx(str(path), threads=1, warmup=5, repeats=repeats)
                r["call_s"] = time.perf_counter() - t0
                local.append(r)
                remote.append(client.benchmark(path, threads=1, warmup=5, repeats=repeats))
            med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
            row = {"model": name, "bytes": path.stat().st_size, "repeats": repeats,
                   "local_median_ms": med([r["median_ms"] for r in local]),
                   "agent_median_ms": med([r["median_ms"] for r in remote]),
                   "local_call_s": med([r["call_s"] for r in local]),
                   "agent_round_trip_s": med([r["round_trip_s"] for r in remote]),
                   "agent_child_s": med([r["agent_seconds"] for r in remote])}
            row["latency_ratio_agent_over_local"] = row["agent_median_ms"] / row["local_median_ms"]
            row["round_trip_overhead_s"] = row["agent_round_trip_s"] - row["local_call_s"]
            out["models"].append(row)
            print(json.dumps(row), flush=True)
            write("deploy_agent.json", out)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(_ROOT.parent / "shared" / "datasets"))
    p.add_argument("--checkpoint", default=str(_ROOT.parent / "shared/models/cifar10/resnet20-12fca82f.th"))
    p.add_argument("--parts", nargs="+", default=["agent", "models", "cifar"], choices=["cifar", "models", "agent"])
    p.add_argument("--epochs", type=float, default=1.0, help="fine-tuning epochs (cifar)")
    p.add_argument("--repeats", type=int, default=200, help="latency repeats (cifar)")
    p.add_argument("--big-repeats", type=int, default=15, help="latency repeats (models, each model)")
    p.add_argument("--agent-rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--models", nargs="+", default=SEVEN)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for part in args.parts:
        {"cifar": part_cifar, "models": part_models, "agent": part_agent}[part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
