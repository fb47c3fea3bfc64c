"""Allocation by the cheapest loss per unit of cost: start from the widest choice,
repeatedly take the one width cut (of any group, to any of its narrower choices)
that adds the least predicted loss per unit of cost removed, until the budget is
met; then give back, most loss recovered per unit of cost first, whatever fits
below the budget's upper tolerance.

Why greedy and not a knapsack DP: the costs are not separable (a conv's MACs are
the product of two groups' widths, and a runtime's time is padded to its block), so
an exact knapsack over groups does not apply; the greedy re-counts every cost at
the current widths. Looking past the next choice lets it cross widths a runtime
pads (48 -> 44 saves no time, 48 -> 32 does). And the allocations it makes for
tighter budgets continue the path it took for looser ones (all but the last few
cuts near each budget, and what give_back returns, are shared), so along a sweep's
rates groups hardly ever widen. bench/allocation.py measures what it gives against
uniform and global allocation, and whether latency ever rises along the rates.
"""
from __future__ import annotations

from typing import Callable

from .problem import Problem

Loss = Callable[[str, int], float]


def cut_to_budget(problem: Problem, loss: Loss) -> dict[str, int]:
    """Cut until the budget is met, the least predicted loss per unit of cost first.
    A cut that would overshoot the budget's lower tolerance is taken only when no other
    cut is left, priced by the cost still to remove (its whole loss for what is needed
    only): else a last cut of a costly group (a ResNet's residual stream, one channel of
    which is 2 % of its parameters) lands further below the budget than give_back can
    return in the steps the groups left wide allow."""
    widths = problem.start
    cost = problem.cost.total(widths)
    while cost > problem.budget:
        needed = cost - problem.budget
        floor = problem.budget - problem.tolerance
        best = None
        for g, choices in problem.choices.items():
            here = widths[g]
            for kept in choices:
                if kept >= here:
                    break
                saved = -problem.cost.delta(widths, g, kept)
                if saved <= 0:
                    continue
                useful = min(saved, needed)
                key = (cost - saved < floor, (loss(g, kept) - loss(g, here)) / useful, -useful)
                if best is None or key < best[0]:
                    best = (key, g, kept, saved)
        if best is None:
            break            # nothing narrower saves anything: the caller reports the budget unreachable
        _, g, kept, saved = best
        widths[g] = kept
        cost -= saved
    return widths


def give_back(problem: Problem, widths: dict[str, int], loss: Loss) -> dict[str, int]:
    """Widen groups while the cost stays within the budget's upper tolerance, the most
    loss recovered per unit of cost first (what the last cut took beyond the budget
    comes back where it is worth most)."""
    cost = problem.cost.total(widths)
    ceiling = problem.budget + problem.tolerance
    while True:
        best = None
        for g, choices in problem.choices.items():
            for kept in choices:
                if kept <= widths[g]:
                    continue
                added = problem.cost.delta(widths, g, kept)
                if cost + added > ceiling:
                    continue
                gain = max(0.0, loss(g, widths[g]) - loss(g, kept))
                value = (gain / max(added, 1e-12), -added)     # at no predicted gain, the least cost first
                if best is None or value > best[0]:
                    best = (value, g, kept, added)
        if best is None:
            return widths
        _, g, kept, added = best
        widths[g] = kept
        cost += added


def greedy(problem: Problem, loss: Loss) -> dict[str, int]:
    return give_back(problem, cut_to_budget(problem, loss), loss)
