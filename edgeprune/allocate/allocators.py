"""The allocators: how a pruned trial's budget is split over its channel groups.
Each is an `Allocator` in the allocator registry (edgeprune.registry.ALLOCATORS),
named in a sweep's `allocation:` list; plugins add theirs
(edgeprune.plugins.register_allocator).

  uniform      every targeted layer cut by the same fraction (the trial prunes as it
               always has; no allocator runs)
  global       one ranking of normalised channel importance across all groups
  sensitivity  the measured sensitivity map, under a MACs (or parameters) cost
  latency      the same map, under the latency the first latency backend measured
"""
from __future__ import annotations

from typing import Callable, Mapping

from .global_rank import global_threshold
from .greedy import greedy
from .problem import Problem

UNIFORM = "uniform"


class Allocator:
    """The interface: `allocator(problem) -> {group: channels kept}` (edgeprune.allocate.Problem)."""
    name: str = ""
    description: str = ""
    cost: str = "macs"           # what its budget counts: macs (parameters under a params target) | latency
    needs_map: bool = False      # the sensitivity map is measured for it (once per model x algorithm per run)
    needs_scores: bool = False   # the algorithm's normalised channel scores are given (problem.scores)

    def __call__(self, problem: Problem) -> Mapping[str, int]:
        raise NotImplementedError


class Uniform(Allocator):
    name, description = UNIFORM, "the same fraction of every targeted layer (no allocation)"

    def __call__(self, problem):
        raise RuntimeError("uniform trials prune without an allocator")


class GlobalRanking(Allocator):
    name, description, needs_scores = "global", "one ranking of normalised channel importance across layers", True

    def __call__(self, problem):
        return global_threshold(problem)


class Sensitivity(Allocator):
    name, description, needs_map = "sensitivity", "the measured sensitivity map, under MACs (or params)", True

    def __call__(self, problem):
        return greedy(problem, problem.loss)


class LatencyAware(Sensitivity):
    name, description, cost = "latency", "the measured sensitivity map, under the runtime's measured latency", \
        "latency"


class FunctionAllocator(Allocator):
    """A plugin's function `allocate(problem) -> {group: kept}` as an allocator."""

    def __init__(self, name: str, fn: Callable[[Problem], Mapping[str, int]], cost: str = "macs",
                 needs_map: bool = False, needs_scores: bool = False, description: str = ""):
        self.name, self.fn, self.cost = name, fn, cost
        self.needs_map, self.needs_scores, self.description = needs_map, needs_scores, description

    def __call__(self, problem):
        return self.fn(problem)


UNIFORM_ALLOCATOR = Uniform()
GLOBAL = GlobalRanking()
SENSITIVITY = Sensitivity()
LATENCY = LatencyAware()
