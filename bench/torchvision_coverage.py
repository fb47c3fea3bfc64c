"""Coverage: every torchvision classifier pruned, run and exported at rate 0.3.

For each model (random weights, 10 classes): prune l1 at 0.3 with conv2d layers; when
that removes nothing (convs coupled with Linear layers, as in transformers), again with
[conv2d, linear]. Then a forward pass, a replay of the pruning history on a fresh
model (the saved-model path), and a verified ONNX export (parity in onnxruntime).
Each model runs in its own process under a time limit, so a hang or a crash is one
failed row, not a stopped benchmark. Rows are written as they finish.

    python bench/torchvision_coverage.py [--models NAME ...] [--size 224] [--timeout 600]
        [--out bench/results/torchvision_coverage.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(name: str, size: int) -> dict:
    """Runs in a child process: prune, run, replay, export one model; a dict."""
    import torch
    torch.set_num_threads(1)
    from edgeprune.deploy.export import export_onnx
    from edgeprune.models import create_model, model_entry
    from edgeprune.prune import prune_model, replay
    from edgeprune.prune.architectures import adapters_for
    row = {"model": name, "stage": "build"}
    t0 = time.perf_counter()
    model = create_model(name, 10, pretrained=False).eval()
    side = max(size, model_entry(name).min_input_size)
    row.update(input_size=side, params_before=sum(p.numel() for p in model.parameters()), stage="prune")
    for layers in (["conv2d"], ["conv2d", "linear"]):
        result = prune_model(model, "l1", 0.3, side, layers=layers)
        if not result.removed_nothing:
            break
    row.update(layers=layers, prune_seconds=round(result.seconds, 2),
               params_after=sum(p.numel() for p in result.model.parameters()), stage="run")
    row["param_reduction"] = round(1 - row["params_after"] / row["params_before"], 4)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        y = result.model(x)
    row.update(output=list(y.shape), stage="replay")
    fresh = create_model(name, 10, pretrained=False, architecture_only=True).eval()
    replay(fresh, result.history, torch.zeros(1, 3, side, side))
    fresh.load_state_dict(result.model.state_dict())
    with torch.no_grad():
        row["replay_max_diff"] = float((fresh(x) - y).abs().max())
    row["stage"] = "export"
    with tempfile.TemporaryDirectory() as tmp:
        rep = export_onnx(result.model, Path(tmp) / "m.onnx", side, check_images=2)
    row.update(onnx_max_abs_diff=rep.max_abs_diff, onnx_mb=round(rep.size_bytes / 1e6, 1),
               exact_claim=all(a.exact for a in adapters_for(model)) and not any(
                   isinstance(m, (torch.nn.LayerNorm,)) or type(m).__name__ == "LayerNorm2d" for m in model.modules()),
               ok=True, stage="done", seconds=round(time.perf_counter() - t0, 1))
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--out", default="bench/results/torchvision_coverage.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        try:
            print("ROW " + json.dumps(one(args.child, args.size)))
        except Exception as e:  # noqa: BLE001 - the row says where it broke
            print("ROW " + json.dumps({"model": args.child, "ok": False,
                                       "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
                                       if str(e).strip() else type(e).__name__}))
        return 0
    import torchvision
    from _common import machine
    names = args.models or torchvision.models.list_models(module=torchvision.models)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, started = [], time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, __file__, "--child", name, "--size", str(args.size)],
                                  capture_output=True, text=True, timeout=args.timeout)
            found = [ln[4:] for ln in done.stdout.splitlines() if ln.startswith("ROW ")]
            row = json.loads(found[-1]) if found else {
                "model": name, "ok": False, "error": f"the process ended ({done.returncode}) without a result: "
                                                     f"{(done.stderr.strip().splitlines() or [''])[-1][:300]}"}
        except subprocess.TimeoutExpired:
            row = {"model": name, "ok": False, "error": f"did not finish within {args.timeout:g} s"}
        row["wall_seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"{name:28s} {'ok' if row.get('ok') else 'FAILED'} {row.get('layers', '')} "
              f"-{100 * row.get('param_reduction', 0):.1f}% {row.get('error', '')}", flush=True)
        ok = [r for r in rows if r.get("ok")]
        out.write_text(json.dumps({"machine": machine(), "rate": 0.3, "size": args.size,
                                   "passed": len(ok), "of": len(rows), "wall_seconds": time.perf_counter() - started,
                                   "failures": {r["model"]: r.get("error") for r in rows if not r.get("ok")},
                                   "rows": rows}, indent=1))
    print(f"{len([r for r in rows if r.get('ok')])} of {len(rows)} pruned, run and exported at 0.3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
