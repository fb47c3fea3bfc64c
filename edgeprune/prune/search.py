"""Meeting a global target (remove a fraction of the parameters or MACs) by
bisecting the per-layer rate."""
from __future__ import annotations

import copy
from typing import Callable

import torch.nn as nn

from ..errors import EdgepruneError
from .result import PruneResult

TOLERANCE = 0.005   # the issue allows 1 point; aim at half of it
MAX_RATE = 0.95


def search_layer_rate(model: nn.Module, goal: float, prune_at: Callable[[nn.Module, float], PruneResult],
                      cost: Callable[[nn.Module], float], what: str, max_steps: int = 16,
                      base: float | None = None, tolerance: float = TOLERANCE) -> PruneResult:
    """The pruned copy of `model` whose reduction of `cost` (against `base`, default
    `model`'s own cost) is closest to `goal`."""
    base = cost(model) if base is None else base

    def attempt(rate: float) -> tuple[float, PruneResult]:
        result = prune_at(copy.deepcopy(model), rate)
        return 1.0 - cost(result.model) / base, result

    top, best = attempt(MAX_RATE)
    if top < goal - tolerance:
        raise EdgepruneError(f"cannot remove {goal:.0%} of the {what}: pruning every targeted layer at "
                             f"{MAX_RATE:.0%} removes {top:.1%}; target more layer types "
                             "(target.layers: [conv2d, linear]) or lower the goal")
    best_gap = abs(top - goal)
    lo, hi = 0.0, MAX_RATE
    for _ in range(max_steps):
        if best_gap <= tolerance:
            break
        mid = (lo + hi) / 2
        reduction, result = attempt(mid)
        if abs(reduction - goal) < best_gap:
            best, best_gap = result, abs(reduction - goal)
        lo, hi = (mid, hi) if reduction < goal else (lo, mid)
    return best
