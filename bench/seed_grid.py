"""Seed grid: structured pruning of randomly initialised torchvision models.

For every model x algorithm x rate it prunes with `edgeprune.prune.prune_model`,
checks that the pruned model runs forward in eval mode (batch 1) and in train
mode (batch 2, BatchNorm needs more than one sample), and records parameter and
MAC reductions, the channel ratio and the pruning time. One failing cell does not
stop the grid; its error text is recorded.

    PYTHONPATH=. python bench/seed_grid.py [--out bench/results/seed_grid.json]
        [--models googlenet resnet50 ...] [--algorithms l1 l2 fpgm]
        [--rates 0.1 0.2 ...] [--size 224] [--num-classes 10] [--layers conv2d linear]

The JSON file is rewritten after every model, so a partial grid survives an
interruption.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

# Allow `python bench/seed_grid.py` from the repository root without installing.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from edgeprune.measure import count_macs, count_params  # noqa: E402
from edgeprune.models import create_model  # noqa: E402
from edgeprune.prune import prune_model  # noqa: E402

DEFAULT_MODELS = ["googlenet", "efficientnet_b0", "densenet121", "vgg16", "mobilenet_v2", "alexnet", "resnet50"]
DEFAULT_ALGORITHMS = ["l1", "l2", "fpgm"]
DEFAULT_RATES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def machine_info() -> dict:
    import torchvision
    try:
        import torch_pruning as tp
        tp_version = getattr(tp, "__version__", "unknown")
    except Exception:  # pragma: no cover - informational only
        tp_version = None
    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_pruning": tp_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


@torch.no_grad()
def check_forward(model: torch.nn.Module, size: int, num_classes: int) -> dict:
    """Forward in eval mode at batch 1 and in train mode at batch 2; returns shapes.

    Train mode updates BatchNorm running statistics; the pruned model is thrown
    away afterwards, and eval mode is checked first, so that does not matter."""
    out = {}
    model.eval()
    y = model(torch.randn(1, 3, size, size))
    out["eval_shape"] = list(y.shape)
    if tuple(y.shape) != (1, num_classes):
        raise AssertionError(f"eval output shape {tuple(y.shape)} != (1, {num_classes})")
    if not torch.isfinite(y).all():
        raise AssertionError("eval output has non-finite values")
    model.train()
    try:
        y = model(torch.randn(2, 3, size, size))
    finally:
        model.eval()
    if isinstance(y, tuple):  # e.g. aux-logit outputs; the main logits come first
        y = y[0]
    out["train_shape"] = list(y.shape)
    if tuple(y.shape) != (2, num_classes):
        raise AssertionError(f"train output shape {tuple(y.shape)} != (2, {num_classes})")
    return out


def run_cell(model, name, algorithm, rate, size, num_classes, base_params, base_macs, layers=("conv2d",)) -> dict:
    cell = {"model": name, "algorithm": algorithm, "rate": rate, "layers": list(layers), "ok": False,
            "stage": "prune", "params_before": base_params, "macs_before": base_macs}
    result = None
    try:
        result = prune_model(model, algorithm, rate, input_size=size, layers=layers)
        cell["prune_seconds"] = result.seconds
        cell["channel_ratio"] = result.channel_ratio
        cell["stage"] = "measure"
        pruned = result.model
        cell["params_after"] = count_params(pruned)
        cell["macs_after"] = count_macs(pruned, size)
        cell["param_reduction"] = 1.0 - cell["params_after"] / base_params
        cell["mac_reduction"] = 1.0 - cell["macs_after"] / base_macs if base_macs else None
        cell["stage"] = "forward"
        cell.update(check_forward(pruned, size, num_classes))
        cell["stage"] = "done"
        cell["ok"] = True
    except Exception as e:  # one failing cell must not stop the grid
        cell["error"] = f"{type(e).__name__}: {e}"
        cell["traceback"] = traceback.format_exc()
    finally:
        del result
        gc.collect()
    return cell


def summarise(cells: list[dict], models, algorithms, rates) -> dict:
    total = len(models) * len(algorithms) * len(rates)
    ok = [c for c in cells if c["ok"]]
    per_model = {}
    for m in models:
        mc = [c for c in cells if c["model"] == m]
        monotone = {}
        for a in algorithms:
            seq = sorted((c["rate"], c["param_reduction"]) for c in mc if c["algorithm"] == a and c["ok"])
            complete = len(seq) == len(rates)
            strict = all(b[1] > a_[1] for a_, b in zip(seq, seq[1:]))
            mac_seq = sorted((c["rate"], c["mac_reduction"]) for c in mc
                             if c["algorithm"] == a and c["ok"] and c["mac_reduction"] is not None)
            mac_strict = all(b[1] > a_[1] for a_, b in zip(mac_seq, mac_seq[1:]))
            monotone[a] = {"param_strict": strict and complete, "mac_strict": mac_strict and complete,
                           "complete": complete}
        secs = [c["prune_seconds"] for c in mc if "prune_seconds" in c]
        per_model[m] = {
            "cells": len(mc),
            "succeeded": sum(c["ok"] for c in mc),
            "param_reduction_strictly_increasing": all(v["param_strict"] for v in monotone.values()),
            "mac_reduction_strictly_increasing": all(v["mac_strict"] for v in monotone.values()),
            "by_algorithm": monotone,
            "mean_prune_seconds": sum(secs) / len(secs) if secs else None,
            "max_prune_seconds": max(secs) if secs else None,
        }
    return {
        "cells_total": total,
        "cells_run": len(cells),
        "cells_succeeded": len(ok),
        "succeeded_str": f"{len(ok)}/{total}",
        "all_models_param_reduction_strictly_increasing":
            all(v["param_reduction_strictly_increasing"] for v in per_model.values()),
        "per_model": per_model,
        "failures": [{k: c.get(k) for k in ("model", "algorithm", "rate", "stage", "error")}
                     for c in cells if not c["ok"]],
    }


def print_table(cells, models, algorithms, rates, key, title):
    lookup = {(c["model"], c["algorithm"], c["rate"]): c for c in cells}
    print(f"\n{title}")
    head = f"{'model':<16}{'alg':<5}" + "".join(f"{r:>7.1f}" for r in rates)
    print(head)
    print("-" * len(head))
    for m in models:
        for a in algorithms:
            row = f"{m:<16}{a:<5}"
            for r in rates:
                c = lookup.get((m, a, r))
                if c is None:
                    row += f"{'':>7}"
                elif not c["ok"] and c.get(key) is None:
                    row += f"{'FAIL':>7}"
                else:
                    v = c.get(key)
                    mark = "" if c["ok"] else "!"
                    row += f"{(100 * v if v is not None else float('nan')):>6.1f}{mark or ' '}"
            print(row)


def write(out: Path, payload: dict) -> None:
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench/results/seed_grid.json")
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--algorithms", nargs="+", default=DEFAULT_ALGORITHMS)
    p.add_argument("--rates", nargs="+", type=float, default=DEFAULT_RATES)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--layers", nargs="+", default=["conv2d"], help="target layer types (default conv2d)")
    args = p.parse_args(argv)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    info = machine_info()
    print(f"torch {info['torch']}, threads {info['torch_threads']}, cpus {info['cpu_count']}", flush=True)

    cells: list[dict] = []
    models_meta: dict[str, dict] = {}
    started = time.perf_counter()

    def payload(done: bool) -> dict:
        return {
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "complete": done,
            "config": {"models": args.models, "algorithms": args.algorithms, "rates": args.rates,
                       "size": args.size, "num_classes": args.num_classes, "pretrained": False,
                       "layers": args.layers},
            "machine": info,
            "wall_seconds": time.perf_counter() - started,
            "models": models_meta,
            "summary": summarise(cells, args.models, args.algorithms, args.rates),
            "cells": cells,
        }

    for name in args.models:
        t0 = time.perf_counter()
        try:
            model = create_model(name, num_classes=args.num_classes, pretrained=False).eval()
            base_params = count_params(model)
            base_macs = count_macs(model, args.size)
        except Exception as e:
            err = f"{type(e).__name__}: {e}"
            tb = traceback.format_exc()
            print(f"[{name}] build failed: {err}", flush=True)
            models_meta[name] = {"error": err}
            for a in args.algorithms:
                for r in args.rates:
                    cells.append({"model": name, "algorithm": a, "rate": r, "ok": False, "stage": "build",
                                  "error": err, "traceback": tb})
            write(out, payload(False))
            continue
        models_meta[name] = {"params": base_params, "macs": base_macs}
        print(f"[{name}] params {base_params:,}  MACs {base_macs:,}", flush=True)
        for a in args.algorithms:
            for r in args.rates:
                cell = run_cell(model, name, a, r, args.size, args.num_classes, base_params, base_macs, args.layers)
                cells.append(cell)
                if cell["ok"]:
                    print(f"  {a:<5} {r:.1f}  ok  params -{100 * cell['param_reduction']:5.1f}%  "
                          f"MACs -{100 * cell['mac_reduction']:5.1f}%  ch {cell['channel_ratio']:.3f}  "
                          f"{cell['prune_seconds']:.2f}s", flush=True)
                else:
                    print(f"  {a:<5} {r:.1f}  FAIL at {cell['stage']}: {cell['error']}", flush=True)
        models_meta[name]["wall_seconds"] = time.perf_counter() - t0
        del model
        gc.collect()
        write(out, payload(False))

    final = payload(True)
    write(out, final)
    s = final["summary"]

    print_table(cells, args.models, args.algorithms, args.rates, "param_reduction", "Parameter reduction (%)")
    print_table(cells, args.models, args.algorithms, args.rates, "mac_reduction", "MAC reduction (%)")
    print("\nPer model: succeeded, param/MAC reduction strictly increasing with rate, prune seconds")
    for m, v in s["per_model"].items():
        mean = v["mean_prune_seconds"]
        mx = v["max_prune_seconds"]
        print(f"  {m:<16}{v['succeeded']:>3}/{v['cells']:<3} params-monotone {str(v['param_reduction_strictly_increasing']):<5} "
              f"MACs-monotone {str(v['mac_reduction_strictly_increasing']):<5} "
              f"mean {mean if mean is None else round(mean, 2)}s  max {mx if mx is None else round(mx, 2)}s")
    print(f"\nCells succeeded: {s['succeeded_str']}  "
          f"(all models param-monotone: {s['all_models_param_reduction_strictly_increasing']})")
    for f in s["failures"]:
        print(f"  FAIL {f['model']} {f['algorithm']} {f['rate']} [{f['stage']}]: {f['error']}")
    print(f"Wrote {out}  ({final['wall_seconds']:.0f}s)")
    return 0 if s["cells_succeeded"] == s["cells_total"] else 1


if __name__ == "__main__":
    sys.exit(main())
