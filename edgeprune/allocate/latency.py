"""A latency model fitted to whole-network timings in a runtime: time = intercept +
sum over classes of layers (kind x output side) of a coefficient x the class's MACs
and another x its output elements (cost.py), channel counts padded to the runtime's
block (rounding.py). Non-negative least squares keeps every coefficient >= 0, so a
narrower network is never predicted slower.

The networks timed: the unpruned model's widths scaled uniformly (a ladder), and
random allocations around it (seeded), each pruned to those widths and timed whole
where trials are timed. With paired timing the model is fitted on the relative
figure (time / the unpruned model's, in which load cancels); predictions are then
relative too, and `ms` scales them by the unpruned model's time. Its leave-one-out
error is what a prediction of an unseen network may be off by.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ..prune.groups import ChannelStructure
from .cost import LatencyCost, LatencyFeatures
from .problem import width_choices

LADDER = (1.0, 0.85, 0.7, 0.55, 0.4, 0.25)
LATENCY_MODEL_VERSION = 2    # 2: output elements beside MACs (a version-1 model reads as it was fitted)


@dataclass
class LatencyModel:
    backend: str
    block: int
    unit: str                                   # relative (to the unpruned model) | ms
    intercept: float
    coefficients: dict[str, float]              # class -> unit per MAC
    reference_ms: float                         # the unpruned model's time (ms per relative unit)
    samples: list[dict] = field(default_factory=list)   # {widths, measured, fitted, held_out}
    seconds: float = 0.0
    version: int = LATENCY_MODEL_VERSION

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "LatencyModel":
        return cls(**d)

    def cost(self, structure: ChannelStructure) -> LatencyCost:
        """Predicted time of widths, in this model's unit."""
        return LatencyCost(structure, self.block, self.intercept, self.coefficients)

    def ms(self, value: float) -> float:
        return value * self.reference_ms if self.unit == "relative" else value

    @property
    def held_out_error(self) -> float:
        """Median |leave-one-out prediction / measured - 1| over the networks it was fitted on."""
        errs = [abs(s["held_out"] / s["measured"] - 1) for s in self.samples if s["measured"] > 0]
        return float(np.median(errs)) if errs else float("nan")


def design(features: LatencyFeatures, widths: Sequence[Mapping[str, int]],
           classes: Optional[Sequence[str]] = None) -> np.ndarray:
    """One row per network: 1 (the intercept), then its feature per class (default: all)."""
    classes = features.classes if classes is None else classes
    return np.array([[1.0] + [f[c] for c in classes] for f in map(features.features, widths)])


def fit(rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares, columns scaled to a common size first."""
    from scipy.optimize import nnls
    scale = np.maximum(np.abs(rows).max(0), 1e-30)
    coef, _ = nnls(rows / scale, y)
    return coef / scale


def leave_one_out(rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each network's time predicted by a fit on all the others."""
    keep = ~np.eye(len(y), dtype=bool)
    return np.array([rows[i] @ fit(rows[keep[i]], y[keep[i]]) for i in range(len(y))])


def sample_widths(structure: ChannelStructure, count: int, multiple: int, min_fraction: float,
                  seed: int) -> list[dict[str, int]]:
    """The ladder, then random allocations: a base fraction per network, each group's
    own fraction scattered around it, snapped to the widths a group may take."""
    rng = random.Random(seed)
    choices = {g.name: width_choices(g.channels, g.channels, multiple, min_fraction) for g in structure.groups}

    def snap(g: str, fraction: float) -> int:
        target = fraction * choices[g][-1]
        return min(choices[g], key=lambda c: abs(c - target))

    out = [{g: snap(g, f) for g in choices} for f in LADDER]
    while len(out) < count:
        base = rng.uniform(min_fraction, 1.0)
        out.append({g: snap(g, min(1.0, max(min_fraction, base + rng.uniform(-0.3, 0.3)))) for g in choices})
    return out


def fit_latency_model(structure: ChannelStructure, timer: Callable[[Mapping[str, int]], float], backend: str,
                      block: int, multiple: int, unit: str, reference_ms: float, networks: int = 0,
                      min_fraction: float = 0.1, seed: int = 0) -> LatencyModel:
    """Time `networks` networks (default: 2 per class of layer + 8, 14..40) with
    `timer(widths)` (in `unit`) and fit the model."""
    start = time.perf_counter()
    features = LatencyFeatures(structure, block)
    count = networks or min(40, max(14, 2 * len(features.kinds) + 8))
    widths = sample_widths(structure, count, multiple, min_fraction, seed)
    measured = np.array([float(timer(w)) for w in widths])
    rows = design(features, widths)
    coef = fit(rows, measured)
    held_out = leave_one_out(rows, measured)
    fitted = rows @ coef
    samples = [{"widths": w, "measured": float(m), "fitted": float(f), "held_out": float(h)}
               for w, m, f, h in zip(widths, measured, fitted, held_out)]
    return LatencyModel(backend, block, unit, float(coef[0]), dict(zip(features.classes, map(float, coef[1:]))),
                        reference_ms, samples, time.perf_counter() - start)
