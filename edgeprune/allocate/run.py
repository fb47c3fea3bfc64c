"""Running an allocator: its answer checked (every group, each width one it may
take) and what it predicts."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from ..errors import EdgepruneError
from .allocators import Allocator
from .problem import Problem


@dataclass
class Allocation:
    widths: dict[str, int]              # group -> channels kept
    cost: float                         # predicted, in the budget's unit
    loss: Optional[float]               # predicted by the sensitivity map (None without one)
    seconds: float


def allocate(problem: Problem, allocator: Allocator) -> Allocation:
    start = time.perf_counter()
    answer = dict(allocator(problem))
    widths = {}
    for g, choices in problem.choices.items():
        kept = answer.get(g, choices[-1])
        if not isinstance(kept, int) or isinstance(kept, bool) or not 1 <= kept <= choices[-1]:
            raise EdgepruneError(f"allocator {allocator.name!r} gave group {g!r} {kept!r} channels; give an int "
                                 f"in 1..{choices[-1]}")
        widths[g] = kept
    unknown = set(answer) - set(widths)
    if unknown:
        raise EdgepruneError(f"allocator {allocator.name!r} named groups the model does not have: "
                             f"{', '.join(sorted(unknown)[:3])}")
    loss = problem.sensitivity.predicted(widths) if problem.sensitivity is not None else None
    return Allocation(widths, problem.cost.total(widths), loss, time.perf_counter() - start)
