"""Timing calls: repeated, paired with a reference, summarised by order statistics.

Standard library only: the device agent's one-file bundle carries this module, so
the host and the device time models with the same code (and without torch)."""
from __future__ import annotations

import time
from typing import Optional

# A timing is known to the clock's tick at best: the CI's half-width never goes below
# half a tick. Python reports perf_counter's resolution; virtual machines often tick
# coarser than they claim, so no finer than a microsecond is assumed (identical
# timings of a tiny model, seen on one VM, gave a CI of exactly 0 otherwise).
TICK_MS = max(time.get_clock_info("perf_counter").resolution, 1e-6) * 1000


def percentile_stats(times_ms: list[float]) -> dict:
    """median, p10 and p90 (nearest rank), mean, min, max, the interquartile range, and
    the median's 95 % confidence interval (distribution-free: order statistics
    n/2 -/+ 0.98 sqrt(n)) with its half-width relative to the median (at least half a
    clock tick: TICK_MS)."""
    t = sorted(times_ms)
    n = len(t)
    median = t[n // 2] if n % 2 else 0.5 * (t[n // 2 - 1] + t[n // 2])
    lo, hi = median_ci(t)
    half = max((hi - lo) / 2, TICK_MS / 2)
    return {"median_ms": median, "p10_ms": quantile(t, 0.1), "p90_ms": quantile(t, 0.9), "mean_ms": sum(t) / n,
            "min_ms": t[0], "max_ms": t[-1], "iqr_ms": t[min(n - 1, (3 * n) // 4)] - t[n // 4],
            "ci_low_ms": lo, "ci_high_ms": hi, "ci_rel": half / median if median > 0 else 0.0}


def quantile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(round(q * (len(sorted_ms) - 1))))]


def median_ci(sorted_ms: list[float]) -> tuple[float, float]:
    n = len(sorted_ms)
    half = 0.98 * n ** 0.5
    return sorted_ms[max(0, int(n / 2 - half))], sorted_ms[min(n - 1, int(n / 2 + half + 0.999))]


def _timed(call) -> float:
    t = time.perf_counter()
    call()
    return (time.perf_counter() - t) * 1000


def time_calls(run, *, warmup: int = 3, repeats: int = 20, max_repeats: Optional[int] = None,
               rel_ci: Optional[float] = None, max_seconds: Optional[float] = None,
               reference=None, min_seconds: float = 0.0) -> tuple[list[float], dict]:
    """Time `run()` (ms): `warmup` untimed calls, then blocks of `repeats` until the
    median's 95 % confidence interval is within +/- `rel_ci` of it (or `max_repeats`
    calls, or `max_seconds`); with rel_ci None, exactly `repeats` calls.

    With a `reference` callable, each call is paired with a reference call, in ABBA
    order (run first, then reference first, ...: neither profits from the caches the
    other leaves), and `relative` is the ratio of their 10th-percentile times. The
    reference's median says how busy the machine was; the ratio does not move with
    it: load that lasts longer than a call slows both alike, and interruptions
    (another process taking the core) only lengthen some calls, which the low
    quantile leaves out. Under a busy sweep the median of each pair's ratio, the figure
    before, drifted 10.5 % where this ratio moved 0.2 % (bench/latency_stability.py).
    With `min_seconds`, timing goes on (past max_repeats too) until it spans that
    long, so that a burst of load shorter than that cannot cover every call.
    Returns the times and {repeats, truncated, reference_median_ms, relative}."""
    for _ in range(warmup):
        run()
        if reference is not None:
            reference()
    cap = max(repeats, max_repeats or repeats) if rel_ci else repeats
    times, ref_times, truncated = [], [], False
    started = time.perf_counter()
    while True:
        for _ in range(min(repeats, cap - len(times)) if len(times) < cap else repeats):
            if reference is None:
                times.append(_timed(run))
            elif len(times) % 2 == 0:
                times.append(_timed(run))
                ref_times.append(_timed(reference))
            else:
                ref_times.append(_timed(reference))
                times.append(_timed(run))
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                truncated = len(times) < cap
                break
        settled = not rel_ci or len(times) >= cap or percentile_stats(times)["ci_rel"] <= rel_ci
        if truncated or (settled and time.perf_counter() - started >= min_seconds):
            break
    info = {"repeats": len(times), "truncated": truncated}
    if ref_times:
        ref = percentile_stats(ref_times)
        info["reference_median_ms"] = ref["median_ms"]
        info["relative"] = percentile_stats(times)["p10_ms"] / ref["p10_ms"]
    return times, info
