"""Pruning a model to chosen widths: each group's producers get the per-layer rate
that takes them from their present channels to the width chosen, and the
algorithm's criterion picks which channels go. The result is checked: a pruner
that ignores per-layer rates would silently give other widths."""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Mapping

import torch
import torch.nn as nn

from ..errors import EdgepruneError
from ..prune import PruneRequest, PruneResult
from ..prune.groups import ChannelStructure
from ..prune.targets import out_channels
from ..registry import ALGORITHMS


def layer_ratios(structure: ChannelStructure, widths: Mapping[str, int], present: Mapping[str, int]) -> dict:
    ratios = {}
    for g in structure.groups:
        kept = widths.get(g.name)
        for layer in g.layers if kept is not None else ():
            if kept < present[layer]:
                ratios[layer] = 1.0 - (kept + 0.5) / present[layer]
    return ratios


def prune_to_widths(model: nn.Module, algorithm: str, structure: ChannelStructure, widths: Mapping[str, int],
                    request: PruneRequest, inplace: bool = False) -> PruneResult:
    """`model` (a copy unless `inplace`) pruned so that each group keeps `widths[group]` channels."""
    target = model if inplace else copy.deepcopy(model)
    ratios = layer_ratios(structure, widths, out_channels(target))
    with torch.enable_grad():      # Torch-Pruning traces through autograd
        result = ALGORITHMS.get(algorithm)(target, 0.0, replace(request, layer_ratios=ratios, round_to=None))
    result.model.eval()
    result.algorithm = algorithm
    after = out_channels(result.model)
    for g in structure.groups:
        want = widths.get(g.name)
        got = after.get(g.layers[0])
        if want is not None and got is not None and got != min(want, out_channels(model)[g.layers[0]]):
            raise EdgepruneError(f"{algorithm} did not keep the widths the allocation chose ({g.layers[0]}: {got} "
                                 f"channels, {want} chosen); an allocation needs a pruner that honours per-layer "
                                 "rates (PruneRequest.layer_ratios)")
    return result
