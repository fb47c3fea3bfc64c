"""The channel multiple a runtime runs fastest, measured: a small probe network (two
3x3 convs through `c` channels at a resolution the model computes at) is timed in
the runtime for every `c` over a range, and two numbers are read off:

  multiple  the smallest m for which time never rises as channels fall, counting
            only multiples of m, and rounding any count down to a multiple of m is
            never slower: allocations keep multiples of it, so that more pruning
            never means more time (ONNX Runtime on AVX-512: 4 here; 47 channels ran
            slower than 48)
  block     the step of the staircase the times make over those multiples (the
            count the runtime pads to: 16 there, where 36, 40, 44 and 48 channels
            took the same time; below 16 channels time fell with every channel):
            the latency model counts channels above it padded to a multiple of it

One noisy timing may break a rule by chance (the machine is shared): a rule holds
with at most one breach of more than 6 %.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch.nn as nn

CANDIDATES = (1, 2, 4, 8, 16)
TOP = 64                 # the probe's widest count; 1 .. TOP are timed
TOLERANCE = 0.06         # timing noise allowed before a rise counts
BREACHES = 1             # ... and rises beyond it that one noisy timing may cause


@dataclass
class RuntimeProfile:
    backend: str
    multiple: int
    block: int
    channels: list[int] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "RuntimeProfile":
        return cls(**d)


def probe_network(channels: int, side: int, input_size: int, width: int = TOP) -> nn.Module:
    """Image -> (pooled to `side`) -> 1x1 to `width` -> 3x3 to `channels` -> 3x3 back -> logits-like."""
    pool = max(1, input_size // side)
    return nn.Sequential(nn.AvgPool2d(pool) if pool > 1 else nn.Identity(), nn.Conv2d(3, width, 1),
                         nn.Conv2d(width, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, width, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


def _safe(times: dict[int, float], m: int, tolerance: float) -> bool:
    lo = min(times)
    multiples = [c for c in sorted(times) if c % m == 0]
    breaches = sum(times[a] > times[b] * (1 + tolerance) for a, b in zip(multiples, multiples[1:]))
    breaches += sum(times[c - c % m] > times[c] * (1 + tolerance) for c in times if c - c % m >= lo)
    return breaches <= BREACHES


def padded(c: float, block: int) -> float:
    """What a runtime with this block computes on: counts above it padded to a multiple of it."""
    return float(np.ceil(c / block - 1e-9) * block) if c > block else float(c)


def _staircase_residual(times: dict[int, float], counts: Sequence[int], block: int) -> float:
    x = np.array([padded(c, block) for c in counts], dtype=float)
    y = np.array([times[c] for c in counts])
    a = np.stack([np.ones_like(x), x], 1)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(np.sum((a @ coef - y) ** 2))


def read_profile(times: dict[int, float], tolerance: float = TOLERANCE) -> tuple[int, int]:
    """(multiple, block) from {channels: time} (see the module docstring)."""
    span = max(times) - min(times) + 1
    usable = [m for m in CANDIDATES if 2 * m <= span]
    multiple = next((m for m in usable if _safe(times, m, tolerance)), usable[-1])
    counts = [c for c in sorted(times) if c % multiple == 0]
    residuals = {b: _staircase_residual(times, counts, b) for b in usable if b >= multiple and b % multiple == 0}
    best = min(residuals.values())
    block = min(b for b, r in residuals.items() if r <= 1.2 * best + 1e-12 * max(times.values()) ** 2)
    return multiple, block


def fast_multiple(time_at: Callable[[int], float], backend: str, top: int = TOP) -> RuntimeProfile:
    """Time the probe at 1 .. top channels with `time_at(channels) -> ms` and read the profile."""
    start = time.perf_counter()
    times = {c: float(time_at(c)) for c in range(1, top + 1)}
    multiple, block = read_profile(times)
    return RuntimeProfile(backend, multiple, block, sorted(times), [times[c] for c in sorted(times)],
                          time.perf_counter() - start)
