"""Which runtime turns pruning into time? Every installed latency backend side by side.

    python bench/backends.py --data-dir ../shared/datasets --models-dir ../shared/models/cifar10
        [--steps 100] [--size 224] [--part cifar|torchvision|both|int8] [--out bench/results/backends.json]
        [--int8-models resnet20 resnet56] [--max-drop 0.3] [--qat-steps 100]
        [--held-out-from both] [--held-out 1000] [--confidence 0.95]

Part 1 (cifar): the pretrained ResNet-20 on the real CIFAR-10, unpruned and l1-pruned at
rates 0.3 and 0.5 (with round_to none and 8), each fine-tuned --steps steps, fp32 and
int8 (quantize: [none, int8]) measured in every backend by `edgeprune sweep` itself:
test accuracy in the runtime, median latency and its 95 % CI, the latency relative to
the unpruned model timed alternately with it, and the runtime file's size.

Part 2 (torchvision): the seven reference models (random weights, 10 classes, --size
px), unpruned and l1-pruned at 0.5: per backend the latency, and the speed-up (from the
interleaved ratio, so machine drift cancels) beside the MAC reduction.

Part 3 (int8): pretrained CIFAR ResNets (--int8-models) unpruned and l1-pruned at 0.3
and 0.5, each as fp32, plain int8, accuracy-controlled int8 ({int8: {max_drop}}, its drop
measured on training images, test images left out of the measured ones, or both: --held-out-from)
and QAT (--qat-steps), in every installed runtime: accuracy in the runtime, latency relative to
the unpruned fp32 model (timed alternately with it), file size, the float layers, and
the CPU's int8 instructions.

Backends: torch (eager), onnxruntime, and openvino, tvm, litert where their extras are
installed (one line says which are not). 1 thread, batch 1, as on a small device.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write  # noqa: E402

from edgeprune import load_config, load_results, run_sweep  # noqa: E402
from edgeprune.config.sections import DeployConfig, MeasureConfig  # noqa: E402
from edgeprune.measure.backends import make_backends  # noqa: E402
from edgeprune.deploy.files import TrialArtifacts  # noqa: E402
from edgeprune.measure import count_macs  # noqa: E402
from edgeprune.models import create_model  # noqa: E402
from edgeprune.prune import prune_model  # noqa: E402
from edgeprune.registry import LATENCY_BACKENDS  # noqa: E402

ALL = ["torch", "onnxruntime", "openvino", "tvm", "litert"]
MODELS = ["googlenet", "efficientnet_b0", "densenet121", "vgg16", "mobilenet_v2", "alexnet", "resnet50"]


def installed() -> list[str]:
    have = []
    for name in ALL:
        why = getattr(LATENCY_BACKENDS.get(name), "missing", lambda: None)()
        if why:
            print(f"skipped: {why}", flush=True)
        else:
            have.append(name)
    return have


def cifar_part(args, backends: list, round_tos=(None, 8), quantize=("none", "int8")) -> dict:
    out = {}
    for round_to in round_tos:
        with tempfile.TemporaryDirectory(prefix="edgeprune-bench-backends-") as tmp:
            cfg = {"name": "backends", "out": f"{tmp}/run", "seed": 0,
                   "models": [{"name": "resnet20", "pretrained": True}], "weights_dir": args.models_dir,
                   "algorithms": ["l1"], "rates": [0.3, 0.5], "round_to": round_to, "quantize": list(quantize),
                   "dataset": {"name": "cifar10", "root": args.data_dir, "test_fraction": args.test_fraction},
                   "prune": {"recalibrate_bn": 20},
                   "finetune": {"epochs": 1, "max_steps": args.steps, "batch_size": 128, "lr": 0.01},
                   "measure": {"latency": backends, "latency_threads": 1, "latency_repeats": 20,
                               "latency_max_repeats": 200},
                   "threads": torch.get_num_threads()}
            started = time.perf_counter()
            run_sweep(load_config(cfg))
            df = load_results(f"{tmp}/run")
            rows = []
            for _, r in df.sort_values(["rate", "model"]).iterrows():
                row = {"model": r["model"], "rate": float(r["rate"]), "status": r["status"],
                       "accuracy_torch": _num(r.get("accuracy")), "params": _num(r.get("params")),
                       "macs": _num(r.get("macs")), "backends": {}}
                for b in (b if isinstance(b, str) else b["name"] for b in backends):
                    got = {k: _num(r.get(f"latency_{b}_{k}")) for k in
                           ("ms", "ci_rel", "relative", "accuracy", "file_bytes", "max_abs_diff", "top1_agreement")}
                    if got["ms"] is not None:
                        row["backends"][b] = got
                rows.append(row)
                print(_cifar_line(row, round_to), flush=True)
            out[f"round_to_{round_to or 'none'}"] = {"wall_seconds": time.perf_counter() - started, "rows": rows}
    return out


def _cifar_line(row: dict, round_to) -> str:
    parts = [f"{row['model']:14s} r={row['rate']:.1f} round={round_to or '-':>2}"]
    for b, g in row["backends"].items():
        acc = f"{100 * g['accuracy']:.1f}%" if g["accuracy"] is not None else "  -  "
        parts.append(f"{b} {g['ms']:.3f}ms {acc} {(g['file_bytes'] or 0) / 1e3:.0f}kB")
    return " | ".join(parts)


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


INT8_KEYS = ("ms", "ci_rel", "relative", "accuracy", "file_bytes", "top1_agreement", "vs_fp32", "float_layers",
             "float_layer_count", "int8_compute")
ROW_KEYS = ("quantize", "held_out_from", "held_out_images", "accuracy", "accuracy_fp32", "size_bytes",
            "int8_vs_fp32", "int8_slower", "int8_slower_on",
            "float_layers", "float_layer_count", "float_layers_cost", "accuracy_held_out_fp32",
            "accuracy_held_out_int8_plain", "accuracy_held_out", "held_out_drop", "held_out_drop_ci", "held_out_drop_bound", "warning", "int8_prepared",
            "equalized_pairs", "bias_corrected_layers", "quantizations", "qat_steps", "qat_seconds",
            "qat_export_top1_agreement", "quantize_seconds", "cpu_int8", "finetune_steps")


def int8_part(args, backends: list, model: str) -> dict:
    """fp32, plain int8, accuracy-controlled int8 and QAT of `model` (pretrained) at rates
    0, 0.3, 0.5 in every installed runtime: accuracy in the runtime, latency relative to
    the unpruned fp32 model (each timed alternately with it), file size."""
    from edgeprune.measure.cpu_features import cpu_int8
    quantize = ["none", "int8"]
    held = {"held_out": args.held_out} if args.held_out else {}
    if args.confidence:
        held["confidence"] = args.confidence
    if args.held_out_from in ("train", "both"):
        quantize.append({"int8": {"max_drop": args.max_drop, **held}})
    if args.held_out_from in ("test", "both"):
        quantize.append({"int8": {"max_drop": args.max_drop, "held_out_from": "test", **held}})
    if args.qat_steps:
        quantize.append({"qat": {"steps": args.qat_steps}})
    keep = Path(args.runs_dir) / model if args.runs_dir else None
    with (contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory(prefix="edgeprune-bench-int8-")) \
            as tmp:
        cfg = {"name": "int8", "out": f"{tmp}/run", "seed": 0,
               "models": [{"name": model, "pretrained": True}], "weights_dir": args.models_dir,
               "algorithms": ["l1"], "rates": [0.3, 0.5], "quantize": quantize,
               "dataset": {"name": "cifar10", "root": args.data_dir, "test_fraction": args.test_fraction},
               "prune": {"recalibrate_bn": 20},
               "finetune": {"epochs": 1, "max_steps": args.steps, "batch_size": 128, "lr": 0.01},
               "measure": {"latency": backends, "latency_threads": 1, "latency_repeats": 20,
                           "latency_max_repeats": 200, "backend_accuracy": True},
               "threads": torch.get_num_threads()}
        started = time.perf_counter()
        run_sweep(load_config(cfg))
        df = load_results(f"{tmp}/run")
        rows = []
        for _, r in df.sort_values(["rate", "position"]).iterrows():
            row = {"model": r["model"], "rate": float(r["rate"]), "status": r["status"], "error": r["error"] or None,
                   **{k: _value(r.get(k)) for k in ROW_KEYS}, "backends": {}}
            for b in (b if isinstance(b, str) else b["name"] for b in backends):
                got = {k: _value(r.get(f"latency_{b}_{k}")) for k in INT8_KEYS}
                if got["ms"] is not None:
                    row["backends"][b] = {k: v for k, v in got.items() if v is not None}
            rows.append(row)
            print(_int8_line(row), flush=True)
    return {"model": model, "steps": args.steps, "qat_steps": args.qat_steps, "max_drop": args.max_drop,
            "held_out_from": args.held_out_from, "held_out": args.held_out or 1000, "confidence": args.confidence,
            "test_fraction": args.test_fraction, "cpu_int8": cpu_int8(), "wall_seconds": time.perf_counter() - started,
            "rows": rows}


def _value(v):
    if isinstance(v, str):
        return v
    return _num(v)


def _int8_line(row: dict) -> str:
    parts = [f"{row['model']:10s} {row.get('quantize') or '':42s} r={row['rate']:.1f} {row['status']}"]
    if row["status"] != "done":
        return parts[0] + f" {row['error']}"
    for b, g in row["backends"].items():
        acc = f"{100 * g['accuracy']:.2f}%" if g.get("accuracy") is not None else "-"
        rel = f"x{g['relative']:.3f}" if g.get("relative") is not None else "-"
        parts.append(f"{b} {acc} {rel} {(g.get('file_bytes') or 0) / 1e3:.0f}kB")
    if row.get("float_layer_count"):
        parts.append(f"float: {row['float_layers']}")
    return " | ".join(parts)


def torchvision_part(args, backends: list[str]) -> list[dict]:
    measure = MeasureConfig(latency=[b for b in backends], latency_threads=1, latency_repeats=args.repeats,
                            latency_max_repeats=args.max_repeats, latency_input_size=args.size)
    rows = []
    images = torch.randn(4, 3, args.size, args.size)
    for name in args.models:
        torch.manual_seed(0)
        base = create_model(name, 10, pretrained=False).eval()
        pruned = prune_model(base, "l1", 0.5, args.size).model.eval()
        macs0, macs1 = count_macs(base, args.size), count_macs(pruned, args.size)
        files = {k: TrialArtifacts(m, args.size, DeployConfig(parity_images=4), k, check_images=lambda s: images,
                                   calibration=lambda s: [])
                 for k, m in (("unpruned", base), ("pruned", pruned))}
        files["pruned"].reference = files["unpruned"]
        files["unpruned"].reference = files["unpruned"]
        row = {"model": name, "mac_reduction": 1 - macs1 / macs0, "mac_speedup": macs0 / macs1,
               "param_reduction": 1 - sum(p.numel() for p in pruned.parameters())
               / sum(p.numel() for p in base.parameters()), "backends": {}}
        for backend in make_backends(measure.latency_backends()):
            label = backend.spec.label
            try:
                t0 = time.perf_counter()
                unpruned, cut = backend.measure(files["unpruned"], False), backend.measure(files["pruned"], False)
                seconds = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 - a backend that cannot run a model is a finding
                row["backends"][label] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
                print(f"{name:16s} {label:12s} failed: {row['backends'][label]['error']}", flush=True)
                continue
            speedup = 1 / cut.extra["relative"]      # pruned / unpruned, timed alternately: drift cancels
            row["backends"][label] = {
                "unpruned_ms": unpruned.median_ms, "pruned_ms": cut.median_ms, "unpruned_ci_rel": unpruned.extra["ci_rel"],
                "pruned_ci_rel": cut.extra["ci_rel"], "speedup": speedup,
                "speedup_unpaired": unpruned.median_ms / cut.median_ms,
                "efficiency": speedup / row["mac_speedup"], "max_abs_diff": cut.extra.get("max_abs_diff"),
                "file_bytes_pruned": cut.extra.get("file_bytes"), "seconds": seconds}
            print(f"{name:16s} {label:12s} MACs -{row['mac_reduction']:5.1%}  {unpruned.median_ms:8.2f} -> "
                  f"{cut.median_ms:8.2f} ms  x{speedup:.2f} (MAC x{row['mac_speedup']:.2f})", flush=True)
        rows.append(row)
        for f in files.values():
            f.close()
        del base, pruned, files
        gc.collect()
    return rows


def summarize(rows: list[dict]) -> dict:
    """Per backend: the mean speed-up and mean efficiency (speed-up / MAC speed-up) over the models."""
    out = {}
    labels = sorted({b for r in rows for b in r["backends"]})
    for b in labels:
        ok = [r["backends"][b] for r in rows if "speedup" in r["backends"].get(b, {})]
        if ok:
            out[b] = {"models": len(ok), "mean_speedup": sum(g["speedup"] for g in ok) / len(ok),
                      "mean_efficiency": sum(g["efficiency"] for g in ok) / len(ok),
                      "failed": [r["model"] for r in rows if "error" in r["backends"].get(b, {})]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--models-dir")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--max-repeats", type=int, default=40)
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--part", choices=["cifar", "torchvision", "both", "tvm-tuning", "int8"], default="both",
                    help="tvm-tuning: ResNet-20 (rates 0, 0.3, 0.5, fp32) in onnxruntime, TVM untuned and TVM "
                         "tuned by MetaSchedule with --tune-trials")
    ap.add_argument("--tune-trials", type=int, default=64, help="MetaSchedule trials per model (tvm-tuning)")
    ap.add_argument("--int8-models", nargs="+", default=["resnet20"], help="int8 part: CIFAR ResNets to run")
    ap.add_argument("--max-drop", type=float, default=0.3, help="int8 part: accuracy control's tolerance (points)")
    ap.add_argument("--qat-steps", type=int, default=100, help="int8 part: QAT steps (0: no QAT rows)")
    ap.add_argument("--held-out-from", choices=["train", "test", "both"], default="both",
                    help="int8 part: where accuracy control measures its drop (both: one controlled row each)")
    ap.add_argument("--held-out", type=int, help="int8 part: images accuracy control measures on (default 1,000)")
    ap.add_argument("--confidence", type=float, help="int8 part: hold the drop's upper bound at this confidence")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (fine-tuning; latency is 1 thread)")
    ap.add_argument("--backends", nargs="+", help="only these of the installed backends (untuned TVM takes "
                                                  "seconds a call on the large models at 224 px)")
    ap.add_argument("--out")
    ap.add_argument("--runs-dir", help="int8 part: keep each model's run folder here (a rerun resumes it) instead "
                                       "of a temporary folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    backends = [b for b in installed() if not args.backends or b in args.backends]
    previous = Path(args.out) if args.out else RESULTS / "backends.json"
    payload = json.loads(previous.read_text()) if args.part != "both" and previous.is_file() else {}
    if args.part == "tvm-tuning":
        if not (args.data_dir and args.models_dir) or "tvm" not in backends:
            ap.error("the tvm-tuning part needs --data-dir, --models-dir and the tvm extra")
        tuned = {"backend": "tvm", "tune_trials": args.tune_trials, "name": "tvm_tuned"}
        # a fresh tuning database: every kernel is tuned in this run, none looked up from an earlier one
        os.environ["EDGEPRUNE_TVM_TUNING"] = tempfile.mkdtemp(prefix="edgeprune-bench-tvm-tuning-")
        payload["tvm_tuning"] = {"steps": args.steps, "test_fraction": args.test_fraction,
                                 "tune_trials": args.tune_trials,
                                 **cifar_part(args, ["onnxruntime", "tvm", tuned], round_tos=(None,),
                                              quantize=("none",))}
        print(f"wrote {write('backends', payload, args.out)}")
        return
    if args.part == "int8":
        if not (args.data_dir and args.models_dir):
            ap.error("the int8 part needs --data-dir (CIFAR-10) and --models-dir (the ResNet weights)")
        payload.pop("machine", None)
        payload["int8"] = {}
        for m in args.int8_models:      # written after each model: a stopped run keeps the models it finished
            payload["int8"][m] = int8_part(args, backends, m)
            print(f"wrote {write('backends', payload, args.out)}")
        return
    payload.pop("machine", None)          # one part rerun keeps the other's figures
    payload.update({"backends": backends, "threads": 1, "batch_size": 1})
    if args.part in ("cifar", "both"):
        if not (args.data_dir and args.models_dir):
            ap.error("the cifar part needs --data-dir (CIFAR-10) and --models-dir (resnet20-12fca82f.th)")
        payload["cifar_resnet20"] = {"steps": args.steps, "test_fraction": args.test_fraction,
                                     **cifar_part(args, backends)}
        write("backends", payload, args.out)
    if args.part in ("torchvision", "both"):
        rows = torchvision_part(args, backends)
        payload["torchvision"] = {"size": args.size, "rate": 0.5, "rows": rows, "summary": summarize(rows)}
        print(payload["torchvision"]["summary"])
    print(f"wrote {write('backends', payload, args.out)}")


if __name__ == "__main__":
    main()
