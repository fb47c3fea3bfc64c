"""The pruning step of a trial whose `allocation` is not uniform: its budget is split
over the model's channel groups by the allocator (edgeprune.allocate), and the
model is pruned to the widths chosen.

What a target means under an allocation:
  rate r            the cost of the uniform cut at r, in the allocator's unit: MACs for
                    global and sensitivity, predicted latency for latency (so that
                    uniform and allocated curves overlay)
  {macs|params: x}  x of the unpruned model's MACs (parameters) removed; under latency,
                    the predicted latency of the uniform cut that removes as much
  {latency_ms: x}   x ms measured in the first latency backend (within 5 %), searched
                    over the allocator's budget
  {latency: x}      the same, at x of the run's timing of the unpruned model

    prepared = prepare(t, ctx)         # the run's map, runtime profile, latency model (measured once)
    result = prune_allocated(t, ctx, source, calibration, parent, prepared)
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Optional

from ..allocate import (Allocator, LatencyModel, MacsCost, ParamsCost, Problem, SensitivityMap, allocate,
                        prune_to_widths, uniform_widths, width_choices)
from ..allocate.cost import full_widths
from ..config.sections import LATENCY_TARGETS
from ..errors import EdgepruneError
from ..measure.latency import TIMING, architecture_signature
from ..prune import PruneResult
from ..prune.groups import ChannelStructure, group_scores
from ..prune.targets import out_channels
from ..registry import ALGORITHMS, ALLOCATORS
from .allocation_measure import multiple_of, request, time_once
from .shared_timing import latency_target_ms, unpruned_ms

TOLERANCE = 0.005          # MACs / params: within half of the 1 % allowed, of the unpruned model's count
PREDICTED_TOLERANCE = 0.02  # a predicted latency budget
LATENCY_TOLERANCE = 0.05   # a latency_ms target, measured
MAX_PROBES = 8


@dataclass
class Prepared:
    allocator: Allocator
    structure: ChannelStructure
    multiple: int
    sensitivity: Optional[SensitivityMap]
    latency: Optional[LatencyModel]


def prepare(t, ctx) -> Prepared:
    """What the trial's allocation needs from the run: read, or measured here once (outside
    the pruning step's time limit: a map may take minutes)."""
    spec, base, inputs = t.spec, t.base, ctx.allocation
    allocator = ALLOCATORS.get(spec.allocation)
    structure = inputs.structure(spec, base)
    profiles = inputs.runtime(spec, base) if ctx.latency_backends else {}
    latency = inputs.latency_model(spec, base) if allocator.cost == "latency" else None
    map_key = inputs.key("sensitivity", spec)
    known = map_key in inputs.measured_here           # measured by an earlier trial of this process
    smap = inputs.sensitivity(spec, base) if allocator.needs_map else None
    m = t.metrics
    m.update(allocation=spec.allocation, allocation_multiple=multiple_of(ctx.settings, profiles))
    if profiles:
        first = profiles[ctx.latency_backends[0].spec.label]
        m.update(runtime_multiple=first.multiple, runtime_block=first.block)
    if smap is not None:
        m.update(map_seconds=smap.seconds, map_calls=smap.calls, map_images=smap.images, map_widths=len(smap.widths),
                 map_recovery=smap.recovery, map_measured=not known and map_key in inputs.measured_here)
        if smap.reduced:
            m["map_reduced"] = smap.reduced
    if latency is not None:
        m.update(latency_model_error=latency.held_out_error, latency_model_networks=len(latency.samples),
                 latency_model_seconds=latency.seconds)
    return Prepared(allocator, structure, m["allocation_multiple"], smap, latency)


def _cost(kind: str, p: Prepared):
    if kind == "latency":
        return p.latency.cost(p.structure)
    return (ParamsCost if kind == "params" else MacsCost)(p.structure)


def _uniform_rate_removing(counter, structure: ChannelStructure, share: float) -> float:
    """The uniform per-layer rate whose cut removes `share` of `counter` (bisected)."""
    full = counter.total(full_widths(structure))
    lo, hi = 0.0, 0.95
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 1 - counter.total(uniform_widths(structure, mid)) / full < share else (lo, mid)
    return (lo + hi) / 2


def budget_for(spec, kind: str, cost, p: Prepared, round_to: Optional[int]) -> float:
    structure = p.structure
    if spec.target_kind == "channels":
        return cost.total(uniform_widths(structure, spec.rate, round_to))
    if spec.target_kind == kind:
        return (1 - spec.rate) * cost.total(full_widths(structure))
    counter = (ParamsCost if spec.target_kind == "params" else MacsCost)(structure)
    return cost.total(uniform_widths(structure, _uniform_rate_removing(counter, structure, spec.rate)))


def _describe(kind: str, value: float, full: float, p: Prepared, backend: str) -> str:
    if kind == "latency":
        return f"{p.latency.ms(value):.4g} ms on {backend} (predicted)"
    return f"{1 - value / full:.1%} fewer {'parameters' if kind == 'params' else 'MACs'}"


class _Solver:
    """Problems for one trial: the same groups, choices and cost, a budget each time."""

    def __init__(self, t, ctx, p: Prepared, source, calibration):
        spec, base = t.spec, t.base
        self.t, self.ctx, self.p, self.spec = t, ctx, p, spec
        self.kind = "latency" if p.allocator.cost == "latency" else ("params" if spec.target_kind == "params"
                                                                     else "macs")
        self.cost = _cost(self.kind, p)
        present = out_channels(source)
        upper = {g.name: min(g.channels, present.get(g.layers[0], g.channels)) for g in p.structure.groups}
        low = min(ctx.settings.allocate.widths)
        self.choices = {g.name: width_choices(g.channels, upper[g.name], p.multiple, low)
                        for g in p.structure.groups}
        self.full = self.cost.total(full_widths(p.structure))
        self.tolerance = TOLERANCE * self.full
        self.scores = None
        if p.allocator.needs_scores:
            t_ = ctx.settings.target
            criterion = ALGORITHMS.get(spec.algorithm).criterion
            self.scores = group_scores(base.model, criterion, request(ctx, spec, base).example_inputs, t_.layers,
                                       t_.include, t_.exclude, spec.seed, calibration)
        self.req = request(ctx, spec, base, calibration)
        self.source = source

    def smallest(self) -> float:
        return self.cost.total({g: c[0] for g, c in self.choices.items()})

    def solve(self, budget: float):
        tolerance = PREDICTED_TOLERANCE * budget if self.kind == "latency" else self.tolerance
        problem = Problem(self.p.structure.groups, self.choices, self.cost, budget, tolerance, self.p.sensitivity,
                          self.scores, self.spec.seed)
        return allocate(problem, self.p.allocator)

    def prune(self, widths) -> PruneResult:
        return prune_to_widths(self.source, self.spec.algorithm, self.p.structure, widths, self.req)

    def unreachable(self, what: str) -> EdgepruneError:
        fix = "ask for a smaller cut (a lower rate, or a larger budget), or let groups go narrower (allocate.widths"
        if self.p.multiple > 1:     # a group narrower than the multiple cannot be cut at all
            fix += f"; widths are kept at multiples of {self.p.multiple}: allocate.round_to: 1 lifts that"
        return EdgepruneError(f"{self.spec.rate_label} cannot be met by {self.spec.allocation} allocation: {what}; "
                              f"{fix})")


class _Timer:
    """A model's latency in the first backend; where it is timed paired with the unpruned
    model, on the scale of the first timing (as the uniform latency search does), so that
    load which comes and goes between probes does not steer the search."""

    def __init__(self, ctx, base, spec, source=None):
        self.ctx, self.base, self.spec = ctx, base, spec
        # the run's timing of the unpruned model where there is one (shared_timing.unpruned_ms)
        self.reference = unpruned_ms(ctx, base, ctx.latency_backends[0]) if source is base.model else None
        self.scale = self.reference

    def __call__(self, model) -> float:
        m = time_once(self.ctx, copy.deepcopy(model), self.base, self.spec.seed, f"{self.spec.trial_id}-probe")
        relative = m.extra.get("relative")
        if relative and self.scale is None:
            self.scale = m.median_ms / relative
        return relative * self.scale if relative and self.scale else m.median_ms


def prune_allocated(t, ctx, source, calibration, parent, p: Prepared) -> PruneResult:
    """`source` (the unpruned model, or a cascade link's parent) pruned to the widths
    the allocation chose for the trial's target."""
    start = time.perf_counter()
    spec = t.spec
    s = _Solver(t, ctx, p, source, calibration)
    if spec.target_kind in LATENCY_TARGETS:
        allocation, result = _meet_latency(t, ctx, s)
    else:
        budget = budget_for(spec, s.kind, s.cost, p, ctx.settings.round_to)
        smallest = s.smallest()
        slack = PREDICTED_TOLERANCE * budget if s.kind == "latency" else s.tolerance
        label = ctx.latency_backends[0].spec.label if ctx.latency_backends else ""
        if smallest > budget + slack:
            raise s.unreachable(f"the narrowest network it may build (every group at its narrowest width) reaches "
                                f"{_describe(s.kind, smallest, s.full, p, label)}, the budget is "
                                f"{_describe(s.kind, budget, s.full, p, label)}")
        allocation = s.solve(budget)
        if allocation.cost > budget + slack:      # an allocator (a plugin's too) that missed: never a done trial
            raise EdgepruneError(f"{spec.allocation} allocation missed the budget of {spec.rate_label}: its widths "
                                 f"reach {_describe(s.kind, allocation.cost, s.full, p, label)}, the budget is "
                                 f"{_describe(s.kind, budget, s.full, p, label)}; this is the allocator's fault, "
                                 "not the config's: report it, or choose another allocation")
        result = s.prune(allocation.widths)
        t.metrics["allocation_budget"] = budget
    result.layer_rate = result.channel_ratio       # no one rate was applied: the share of channels removed
    t.metrics.update(allocation_cost=s.kind, allocation_predicted_cost=allocation.cost,
                     allocation_widths=dict(allocation.widths), allocation_seconds=time.perf_counter() - start)
    if allocation.loss is not None:
        t.metrics["allocation_predicted_loss"] = allocation.loss
    if p.latency is not None and ctx.latency_backends:
        _predicted_vs_measured(t, ctx, p, result, allocation.widths)
    return result


def _meet_latency(t, ctx, s: _Solver):
    """Search the budget until the first backend measures the target within 5 %: the
    first guess the target itself (a latency budget) or the MACs in proportion, then the
    budget scaled by target / measured, bisecting where that leaves the bracket."""
    spec, base = t.spec, t.base
    timer = _Timer(ctx, base, spec, s.source)
    start_ms = timer(s.source)
    unpruned = timer.scale or start_ms      # ms per relative unit
    target = latency_target_ms(spec, ctx, base, ctx.latency_backends[0],
                               lambda: start_ms if s.source is base.model else timer(base.model))
    t.metrics.update(latency_target_ms=target, latency_unpruned_ms=start_ms)
    widest = {g: c[-1] for g, c in s.choices.items()}
    if target >= start_ms:           # fast enough already
        allocation = s.solve(s.cost.total(widest))
        return allocation, s.prune(allocation.widths)
    lo, hi = s.smallest(), s.cost.total(widest)
    if s.kind == "latency":
        guess = target / unpruned if s.p.latency.unit == "relative" else target
    else:
        guess = hi * target / start_ms
    best, probes, bracket = None, 0, [lo, hi]
    while probes < MAX_PROBES:
        budget = min(max(guess, lo), hi)
        allocation = s.solve(budget)
        result = s.prune(allocation.widths)
        ms = timer(result.model)
        probes += 1
        if best is None or abs(ms - target) < abs(best[2] - target):
            best = (allocation, result, ms)
        if abs(ms - target) <= LATENCY_TOLERANCE * target:
            break
        if ms > target:
            if budget <= lo:
                raise s.unreachable(f"the narrowest network it may build measured {ms:.4g} ms on "
                                    f"{ctx.latency_backends[0].spec.label}; the smallest reachable latency is about "
                                    f"{ms:.4g} ms")
            bracket[1] = min(bracket[1], budget)
        else:
            bracket[0] = max(bracket[0], budget)
        guess = budget * target / ms
        if not bracket[0] < guess < bracket[1]:
            guess = (bracket[0] + bracket[1]) / 2
    allocation, result, ms = best
    timer.scale = None               # a fresh, unscaled timing of the model chosen
    t.metrics.update(latency_search_ms=ms, latency_reached_ms=timer(result.model), allocation_probes=probes,
                     allocation_budget=s.cost.total(allocation.widths),
                     latency_scale="run" if timer.reference else "trial")
    return allocation, result


def _predicted_vs_measured(t, ctx, p: Prepared, result: PruneResult, widths) -> None:
    """The network measured whole right after allocating, against what the latency model
    predicted; the timing is what the trial's measuring stage then reuses (one timing per
    architecture and backend in a run)."""
    backend = ctx.latency_backends[0]
    m = time_once(ctx, copy.deepcopy(result.model), t.base, t.spec.seed, f"{t.spec.trial_id}-allocated")
    predicted = p.latency.cost(p.structure).total(widths)
    relative = m.extra.get("relative")
    measured = relative if p.latency.unit == "relative" and relative else m.median_ms
    scale = m.extra.get("reference_ms", p.latency.reference_ms) if p.latency.unit == "relative" else 1.0
    t.metrics.update(latency_predicted_ms=predicted * scale, latency_allocated_ms=m.median_ms,
                     latency_prediction_error=predicted / measured - 1)
    timing = {"ms": m.median_ms, "p90_ms": m.p90_ms, **{k: v for k, v in m.extra.items() if k in TIMING}}
    sig = architecture_signature(result.model, t.base.input_size)
    ctx.timing.by_signature.setdefault(sig, {}).setdefault(backend.spec.label, timing)
