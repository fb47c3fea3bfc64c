"""Whether an int8 file is faster than its fp32 twin, in each runtime that timed both.

int8 does not always pay: without int8 dot-product instructions (cpu_features), or
where quantize/dequantize pairs are left between layers, an int8 file can run slower
than the fp32 model it came from. The ratio is taken from the paired figures
(latency_<backend>_relative: each timed alternately with the unpruned fp32 model, so
machine load cancels) where both rows have them, else from the two medians.

    speed_against_twin(variant_row, twin_row) -> {latency_<backend>_vs_fp32, int8_vs_fp32,
                                                  int8_slower, int8_slower_on}
"""
from __future__ import annotations

import math


def _figure(row: dict, label: str) -> tuple[float | None, str]:
    rel = row.get(f"latency_{label}_relative")
    if isinstance(rel, (int, float)) and rel > 0:
        return float(rel), "paired"
    ms = row.get(f"latency_{label}_ms")
    return (float(ms), "medians") if isinstance(ms, (int, float)) and ms > 0 else (None, "")


def timed_labels(row: dict) -> list[str]:
    """The backends whose latency the row holds (latency_<label>_ms), in its order."""
    from .latency import TIMING
    suffixes = tuple(f"_{t}" for t in TIMING if t != "ms")
    return [k[len("latency_"):-len("_ms")] for k in row
            if k.startswith("latency_") and k.endswith("_ms") and k != "latency_ms" and k != "latency_p90_ms"
            and not k.endswith(suffixes) and not k.startswith(("latency_target", "latency_search",
                                                                 "latency_reached", "latency_unpruned"))]


def speed_against_twin(row: dict, twin: dict) -> dict:
    """The int8 row's latency over its fp32 twin's in each backend both were timed in
    (latency_<label>_vs_fp32: above 1 is slower); int8_vs_fp32 and int8_slower for the
    first backend (what latency_ms and `recommend` use); int8_slower_on names every
    backend where it is slower, with the ratio."""
    out: dict = {}
    slower = []
    for label in timed_labels(row):
        mine, basis = _figure(row, label)
        theirs, twin_basis = _figure(twin, label)
        if mine is None or theirs is None:
            continue
        if basis != twin_basis:              # one paired, one not: compare like with like
            mine, theirs, basis = row.get(f"latency_{label}_ms"), twin.get(f"latency_{label}_ms"), "medians"
            if not mine or not theirs:
                continue
        ratio = mine / theirs
        if math.isnan(ratio):
            continue
        out[f"latency_{label}_vs_fp32"] = ratio
        if ratio > 1.0:
            slower.append(f"{label} ×{ratio:.2f}" + (" (medians)" if basis == "medians" else ""))
        if label == row.get("latency_backend"):
            out.update(int8_vs_fp32=ratio, int8_slower=ratio > 1.0)
    if slower:
        out["int8_slower_on"] = ", ".join(slower)
    return out
