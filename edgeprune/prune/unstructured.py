"""Unstructured magnitude pruning (torch.nn.utils.prune): weights are zeroed, not
removed, so it reports sparsity; parameters, MACs and latency do not fall."""
from __future__ import annotations

import torch.nn as nn
import torch.nn.utils.prune as tprune

from .result import PruneResult
from .targets import out_channels, select_layers


def prune_unstructured(model: nn.Module, rate: float, layers=("conv2d",), include=(), exclude=()) -> PruneResult:
    """Zero the `rate` smallest-magnitude weights of every targeted layer, in place."""
    targets, _ = select_layers(model, layers, include, exclude)
    modules = dict(model.named_modules())
    zeros = total = 0
    for name in targets:
        m = modules[name]
        tprune.l1_unstructured(m, "weight", amount=rate)
        tprune.remove(m, "weight")  # make the zeros permanent, drop the mask
        zeros += int((m.weight == 0).sum())
        total += m.weight.numel()
    channels = out_channels(model)
    return PruneResult(model=model, algorithm="unstructured_l1", structured=False, layer_rate=rate,
                       layer_channels={n: (c, c) for n, c in channels.items()}, targets=targets,
                       sparsity=zeros / total if total else 0.0)
