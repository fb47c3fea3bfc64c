"""Pruning: `prune_model(model, algorithm, rate, input_size)` is the entry point.

Algorithms are `Pruner`s in the algorithm registry (edgeprune.registry.ALGORITHMS):
  l1, l2, fpgm, random, taylor  structured filter pruning, channels physically removed
  unstructured_l1               magnitude pruning with torch.nn.utils.prune: zeroes
                                weights, reports sparsity, reduces nothing physical
and whatever plugins register. A target is a per-layer channel fraction
("channels") or a global reduction of the model's "params" or "macs", met by
searching the per-layer rate.
"""
from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Iterable, Optional, Sequence

import torch
import torch.nn as nn

from ..errors import EdgepruneError
from ..models.complexity import count_macs, count_params
from ..registry import ALGORITHMS
from . import architectures, targets  # noqa: F401  (register the architecture adapters and layer types)
from .criteria import BUILTIN, Criterion, Filters
from .custom_layers import cut_inputs, register_layer_pruner
from .pruners import ChannelChoicePruner, CriterionPruner, Pruner, PruneRequest, UnstructuredPruner
from .result import PruneResult
from .search import search_layer_rate
from .structured import replay
from .targets import out_channels, select_layers

__all__ = ["prune_model", "PruneResult", "Pruner", "PruneRequest", "CriterionPruner", "ChannelChoicePruner",
           "Criterion", "Filters", "register_layer_pruner", "select_layers", "cut_reference", "replay",
           "example_input"]

for _criterion in BUILTIN:
    ALGORITHMS.add(_criterion.name, CriterionPruner(_criterion))
ALGORITHMS.add(UnstructuredPruner.name, UnstructuredPruner())


def example_input(input_size: int) -> torch.Tensor:
    return torch.randn(1, 3, input_size, input_size)


def prune_model(model: nn.Module, algorithm: str, rate: float, input_size: int, *, kind: str = "channels",
                layers: Sequence[str] = ("conv2d",), include: Sequence[str] = (), exclude: Sequence[str] = (),
                round_to: Optional[int] = None, seed: int = 0, calibration: Optional[Iterable] = None,
                inplace: bool = False, reference: Optional[nn.Module] = None) -> PruneResult:
    """Prune a copy of `model` (the model passed in is left as it was), or the model
    itself with `inplace=True` (plain channel rates only).

    `calibration` is a re-iterable of (images, labels) batches, needed by `taylor`.
    With `reference`, the unpruned original of an already pruned `model`, the rate is
    measured against it: a channel rate keeps that fraction of each layer's ORIGINAL
    channels, a params/macs target is a reduction of the original's counts (how a
    cascade prunes each link from its parent).
    """
    pruner: Pruner = ALGORITHMS.get(algorithm)
    request = PruneRequest(example_input(input_size), tuple(layers), tuple(include), tuple(exclude), round_to, seed,
                           list(calibration) if calibration is not None else None)

    def prune_at(m: nn.Module, r: float) -> PruneResult:
        return pruner(m, r, request)

    def prune_towards(m: nn.Module, r: float) -> PruneResult:
        ratios = ratios_towards(reference, m, r, layers, include, exclude)
        return pruner(m, r, replace(request, layer_ratios=ratios))

    start = time.perf_counter()
    with torch.enable_grad():     # Torch-Pruning traces through autograd, even when called under no_grad
        if kind == "channels":
            target = model if inplace else copy.deepcopy(model)
            result = (prune_towards if reference is not None and pruner.structured else prune_at)(target, rate)
        elif not pruner.structured:
            raise EdgepruneError(f"{algorithm} zeroes weights and cannot meet a {kind} target; give it plain rates")
        else:   # a uniform per-layer rate searched on `model`, the reduction measured against the original
            cost = {"params": count_params, "macs": lambda m: count_macs(m, input_size)}[kind]
            result = search_layer_rate(model, rate, prune_at, cost, what=kind,
                                       base=cost(reference) if reference is not None else None)
    result.model.eval()
    result.algorithm = algorithm
    result.seconds = time.perf_counter() - start
    return result


def ratios_towards(reference: nn.Module, model: nn.Module, rate: float, layers, include, exclude) -> dict:
    """Per-layer rates that take each targeted layer of `model` from its present
    channels to int(original x (1 - rate)), as pruning the original at `rate` would."""
    original, present = out_channels(reference), out_channels(model)
    targets, _ = select_layers(model, layers, include, exclude)
    ratios = {}
    for name in targets:
        keep = int(original.get(name, present[name]) * (1 - rate))
        ratios[name] = min(max(1.0 - (keep + 0.5) / present[name], 0.0), 1.0)
    return ratios


def cut_reference(original: nn.Module, result: PruneResult) -> nn.Module:
    """A copy of the unpruned model that ignores exactly the channels `result`
    removed; a correct pruned model computes the same outputs."""
    reference = copy.deepcopy(original).eval()
    modules = dict(reference.named_modules())
    for name, removed in result.removed_inputs.items():
        cut_inputs(modules[name], removed)
    return reference
