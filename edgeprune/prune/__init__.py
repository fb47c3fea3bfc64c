"""Pruning: `prune_model(model, algorithm, target, input_size)` is the entry point.

Algorithms (stable names):
  l1, l2, fpgm, random, taylor  structured filter pruning, channels physically removed
  unstructured_l1               magnitude pruning with torch.nn.utils.prune: zeroes
                                weights, reports sparsity, reduces nothing physical
A target is a per-layer channel fraction ("channels") or a global reduction of
the model's "params" or "macs", met by searching the per-layer rate.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch
import torch.nn as nn

from ..measure.complexity import count_macs, count_params
from ..registry import Registry
from .criteria import CRITERIA, Criterion
from .custom_layers import cut_inputs, register_layer_pruner
from .result import PruneResult
from .search import search_layer_rate
from .structured import prune_structured
from .targets import select_layers
from .unstructured import prune_unstructured

__all__ = ["prune_model", "PruneResult", "algorithm_names", "ALGORITHMS", "Algorithm",
           "register_layer_pruner", "select_layers", "cut_reference"]


@dataclass(frozen=True)
class Algorithm:
    name: str
    structured: bool
    criterion: Optional[Criterion]
    description: str

    @property
    def needs_data(self) -> bool:
        return bool(self.criterion and self.criterion.needs_gradients)


ALGORITHMS: Registry[Algorithm] = Registry("pruning algorithm")
for _name, _desc in [("l1", "filter L1 norm (Li et al. 2017)"), ("l2", "filter L2 norm (Li et al. 2017)"),
                     ("fpgm", "distance to the geometric median (He et al. 2019)"),
                     ("random", "random channels (control)"),
                     ("taylor", "first-order Taylor (Molchanov et al. 2019)")]:
    ALGORITHMS.add(_name, Algorithm(_name, True, CRITERIA.get(_name), _desc))
ALGORITHMS.add("unstructured_l1", Algorithm("unstructured_l1", False, None,
                                            "unstructured weight magnitude: sparsity only"))


def algorithm_names() -> list[str]:
    return ALGORITHMS.names()


def prune_model(model: nn.Module, algorithm: str, rate: float, input_size: int, *, kind: str = "channels",
                layers: Sequence[str] = ("conv2d",), include: Sequence[str] = (), exclude: Sequence[str] = (),
                round_to: Optional[int] = None, seed: int = 0,
                calibration: Optional[Iterable] = None, inplace: bool = False) -> PruneResult:
    """Prune a copy of `model` (the model passed in is left as it was), or the model
    itself with `inplace=True` (plain channel rates only).

    `calibration` is a re-iterable of (images, labels) batches, needed by `taylor`.
    """
    algo = ALGORITHMS.get(algorithm)
    example = torch.randn(1, 3, input_size, input_size)
    if calibration is not None:
        calibration = list(calibration)

    def prune_at(m: nn.Module, r: float) -> PruneResult:
        if not algo.structured:
            return prune_unstructured(m, r, layers, include, exclude)
        return prune_structured(m, algo.criterion, r, example, layers, include, exclude,
                                round_to=round_to, seed=seed, calibration=calibration)

    start = time.perf_counter()
    if kind == "channels":
        result = prune_at(model if inplace else copy.deepcopy(model), rate)
    elif not algo.structured:
        raise ValueError(f"{algorithm} zeroes weights and cannot meet a {kind} target; give it plain rates")
    else:
        cost = {"params": count_params, "macs": lambda m: count_macs(m, input_size)}[kind]
        result = search_layer_rate(model, rate, prune_at, cost, what=kind)
    result.model.eval()
    result.algorithm = algorithm
    result.seconds = time.perf_counter() - start
    return result


def cut_reference(original: nn.Module, result: PruneResult) -> nn.Module:
    """A copy of the unpruned model that ignores exactly the channels `result`
    removed; a correct pruned model computes the same outputs."""
    reference = copy.deepcopy(original).eval()
    modules = dict(reference.named_modules())
    for name, removed in result.removed_inputs.items():
        cut_inputs(modules[name], removed)
    return reference
