"""What bench/allocation.py's trials say, read from the paired relative figures
(time / the unpruned model's, timed back to back), not from raw milliseconds: on
shared cores a load spike moves a raw median by tens of percent (MobileNetV2's
latency allocation at 0.3 read 11.66 ms in OpenVINO, slower than the unpruned
8.13 ms, while its paired figure was 0.64x).

- real part: each allocated network against uniform at the same measured latency
  (uniform's accuracy interpolated along its own points), and whether a uniform
  network is both faster and more accurate;
- random part: whether measured latency ever rises along the rates, per allocation
  and backend, and the latency model's prediction error on the allocated networks.
"""
from __future__ import annotations

import numpy as np

RISE = 0.05        # a rise smaller than this (5 % of the unpruned time) is within timing noise


def _relative(t: dict, backend: str = "onnxruntime"):
    return t.get(f"latency_{backend}_relative")


def against_uniform(trials: list[dict]) -> list[dict]:
    """Each allocated, finished trial beside uniform at its measured latency."""
    done = [t for t in trials if t["status"] == "done" and _relative(t) and t.get("accuracy") is not None]
    uniform = sorted((_relative(t), t["accuracy"]) for t in done if t["allocation"] in ("uniform", "baseline"))
    xs, ys = zip(*uniform) if uniform else ((), ())
    out = []
    for t in done:
        if t["allocation"] in ("uniform", "baseline"):
            continue
        rel, acc = _relative(t), t["accuracy"]
        inside = bool(xs) and xs[0] <= rel <= xs[-1]
        at_same = float(np.interp(rel, xs, ys)) if inside else None
        out.append({"allocation": t["allocation"], "target": t["rate_label"], "relative": round(rel, 4),
                    "accuracy": acc, "uniform_at_same_latency": at_same,
                    "gain": None if at_same is None else round(acc - at_same, 4),
                    "uniform_faster_and_better": any(x <= rel and y > acc for x, y in uniform)})
    return out


def monotone(trials: list[dict], backend: str) -> dict:
    """Per allocation: the relative time along the rates, and every rise above RISE."""
    out = {}
    for alloc in sorted({t["allocation"] for t in trials} - {"baseline"}):
        points = sorted((float(t["rate_label"]), _relative(t, backend)) for t in trials
                        if t["allocation"] == alloc and t["status"] == "done" and _relative(t, backend))
        rises = [{"from": a, "to": b, "relative": [round(x, 3), round(y, 3)]}
                 for (a, x), (b, y) in zip(points, points[1:]) if y > x + RISE]
        above = [r for r, x in points if x > 1 + RISE]
        out[alloc] = {"relative": {str(r): round(x, 4) for r, x in points}, "rises": rises,
                      "slower_than_unpruned_at": above, "monotone": not rises and not above}
    return out


def summarise(out: dict) -> dict:
    summary = {}
    for model, entry in out.get("real", {}).items():
        summary[f"real/{model}"] = {k: against_uniform(v["trials"]) for k, v in entry.items()
                                    if k.startswith("steps_")}
    for key, entry in out.get("random", {}).items():
        errors = [t["latency_prediction_error"] for t in entry["trials"]
                  if t.get("latency_prediction_error") is not None]
        summary[f"random/{key}"] = {
            "monotone": {b: monotone(entry["trials"], b) for b in ("onnxruntime", "openvino")},
            "prediction_error_allocated": [min(errors), max(errors)] if errors else None,
            "latency_model_held_out_error": ([min(entry["latency_model_held_out_errors"]),
                                              max(entry["latency_model_held_out_errors"])]
                                             if entry.get("latency_model_held_out_errors") else None)}
    return summary
