"""Does removing MACs remove latency? ONNX Runtime on this CPU, batch 1, 1 thread.

    python bench/latency_vs_macs.py [--size 224] [--rates 0.3 0.5 0.7] [--round-to 8]

For the seven reference models (random weights), unpruned and pruned with l1 at
each rate, with and without rounding kept channels to a multiple of --round-to:
the MAC reduction, the ONNX Runtime speed-up over the unpruned model, and the
ratio speed-up / (1 / (1 - MAC reduction)), i.e. how much of the MAC saving turns
into time. Every model is exported with edgeprune's checked ONNX export.
"""
from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import torch

from _common import write
from edgeprune.agent.bench import benchmark_onnx
from edgeprune.deploy import export_onnx
from edgeprune.measure import count_macs
from edgeprune.models import create_model
from edgeprune.prune import prune_model

MODELS = ["googlenet", "efficientnet_b0", "densenet121", "vgg16", "mobilenet_v2", "alexnet", "resnet50"]
CONV_DOMINATED = {"googlenet", "efficientnet_b0", "densenet121", "mobilenet_v2", "resnet50"}


def ort_ms(model, size: int, folder: Path, name: str, repeats: int) -> float:
    path = folder / f"{name}.onnx"
    export_onnx(model, path, size, check_images=2)
    stats = benchmark_onnx(str(path), threads=1, warmup=3, repeats=repeats)
    path.unlink()
    return stats["median_ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rates", type=float, nargs="*", default=[0.3, 0.5, 0.7])
    ap.add_argument("--round-to", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models:
            torch.manual_seed(0)
            base = create_model(name, 10, pretrained=False).eval()
            macs0 = count_macs(base, args.size)
            ms0 = ort_ms(base, args.size, folder, "base", args.repeats)
            for rate in args.rates:
                for round_to in (None, args.round_to):
                    pruned = prune_model(base, "l1", rate, args.size, round_to=round_to).model
                    mac_red = 1 - count_macs(pruned, args.size) / macs0
                    ms = ort_ms(pruned, args.size, folder, "pruned", args.repeats)
                    speedup = ms0 / ms
                    row = {"model": name, "rate": rate, "round_to": round_to, "mac_reduction": mac_red,
                           "unpruned_ms": ms0, "pruned_ms": ms, "speedup": speedup,
                           "mac_speedup": 1 / (1 - mac_red), "efficiency": speedup * (1 - mac_red)}
                    rows.append(row)
                    print(f"{name:16s} r={rate:.1f} round={round_to or '-':>2} MACs -{mac_red:6.1%}  "
                          f"{ms0:7.1f} -> {ms:7.1f} ms  x{speedup:.2f} (MAC x{row['mac_speedup']:.2f}, "
                          f"efficiency {row['efficiency']:.2f})", flush=True)
                    del pruned
                    gc.collect()
            del base
            gc.collect()
    conv = [r["efficiency"] for r in rows if r["model"] in CONV_DOMINATED]
    summary = {"mean_efficiency_conv_dominated": sum(conv) / len(conv) if conv else None,
               "min_efficiency_conv_dominated": min(conv) if conv else None}
    path = write("latency_vs_macs", {"size": args.size, "threads": 1, "backend": "onnxruntime",
                                     "rows": rows, "summary": summary,
                                     "aim": "speed-up >= 0.8 of the MAC reduction on conv-dominated models"},
                 args.out)
    print(summary, f"\nwrote {path}")


if __name__ == "__main__":
    main()
