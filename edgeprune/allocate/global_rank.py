"""`global` allocation: one ranking of normalised channel importance across all
groups (every producer's filter scores divided by their mean, as pruning
normalises them), cut at the threshold that meets the budget. A group keeps its
channels scored above the threshold, rounded to the nearest width it may take."""
from __future__ import annotations

import bisect

import torch

from ..errors import EdgepruneError
from .problem import Problem

STEPS = 60


def at_threshold(problem: Problem, threshold: float) -> dict[str, int]:
    widths = {}
    for g, choices in problem.choices.items():
        above = int((problem.scores[g] > threshold).sum()) if g in problem.scores else choices[-1]
        i = bisect.bisect_left(choices, above)
        near = [c for c in choices[max(0, i - 1):i + 1]] or [choices[-1]]
        widths[g] = min(near, key=lambda c: (abs(c - above), c))
    return widths


def global_threshold(problem: Problem) -> dict[str, int]:
    if problem.scores is None:
        raise EdgepruneError("global allocation ranks a criterion's channel scores, and none were given")
    every = torch.cat([s for s in problem.scores.values()]) if problem.scores else torch.zeros(1)
    lo, hi = float(every.min()) - 1e-9, float(every.max()) + 1e-9
    best, best_gap = problem.start, abs(problem.cost.total(problem.start) - problem.budget)
    within, within_gap = None, float("inf")       # the closest that does not exceed the budget's tolerance
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        widths = at_threshold(problem, mid)
        cost = problem.cost.total(widths)
        if abs(cost - problem.budget) < best_gap:
            best, best_gap = widths, abs(cost - problem.budget)
        if cost <= problem.budget + problem.tolerance and abs(cost - problem.budget) < within_gap:
            within, within_gap = widths, abs(cost - problem.budget)
        if best_gap <= problem.tolerance / 4:
            break
        lo, hi = (mid, hi) if cost > problem.budget else (lo, mid)
    # the closest network, unless rounding to the widths' steps put it over the budget
    if within is not None and problem.cost.total(best) > problem.budget + problem.tolerance:
        return within
    return best
