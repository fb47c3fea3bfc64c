"""Structured (channel) pruning on Torch-Pruning's dependency graph: the removed
channels are physically cut out of every coupled layer."""
from __future__ import annotations

from typing import Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from .criteria import Criterion
from .custom_layers import LAYER_PRUNERS, mixes_channels
from .importance import FilterImportance
from .result import PruneResult
from .targets import LAYER_TYPES, out_channels, select_layers


class _ChannelLedger:
    """Maps each pruning step's indices (relative to the layer as it is then) back
    to the original channel numbers, so the result can say what was removed."""

    def __init__(self, model: nn.Module, graph):
        self.graph = graph
        self.names = {m: n for n, m in model.named_modules()}
        self.in_maps: dict[str, list[int]] = {}
        self.removed_inputs: dict[str, list[int]] = {}

    def record(self, group) -> None:
        for dep, idxs in group:
            if not idxs or not self.graph.is_in_channel_pruning_fn(dep.handler):
                continue
            module = dep.target.module
            name = self.names.get(module)
            if name is None or not mixes_channels(module):  # add, cat, BatchNorm: nothing to record
                continue
            if name not in self.in_maps:
                self.in_maps[name] = list(range(self.graph.get_in_channels(module)))
            current = self.in_maps[name]
            gone = set(idxs)
            self.removed_inputs.setdefault(name, []).extend(current[i] for i in sorted(gone))
            self.in_maps[name] = [c for i, c in enumerate(current) if i not in gone]


def accumulate_gradients(model: nn.Module, batches: Iterable) -> None:
    """Sum loss gradients over calibration batches (eval mode: BN statistics stay put)."""
    model.eval()
    model.zero_grad(set_to_none=True)
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()


def prune_structured(model: nn.Module, criterion: Criterion, rate: float, example_inputs: torch.Tensor,
                     layers=("conv2d",), include=(), exclude=(), round_to: Optional[int] = None,
                     seed: int = 0, calibration: Optional[Iterable] = None) -> PruneResult:
    """Remove `rate` of the output channels of every targeted layer, in place."""
    targets, ignored = select_layers(model, layers, include, exclude)
    before = out_channels(model)
    if criterion.needs_gradients:
        if calibration is None:
            raise ValueError(f"the {criterion.name} criterion needs calibration batches")
        accumulate_gradients(model, calibration)
    model.eval()
    pruner = tp.pruner.MetaPruner(
        model, example_inputs, importance=FilterImportance(criterion, seed), pruning_ratio=rate,
        ignored_layers=ignored, root_module_types=[LAYER_TYPES.get(t) for t in layers],
        round_to=round_to, customized_pruners=dict(LAYER_PRUNERS))
    ledger = _ChannelLedger(model, pruner.DG)
    for group in pruner.step(interactive=True):
        ledger.record(group)
        group.prune()
    model.zero_grad(set_to_none=True)
    after = out_channels(model)
    return PruneResult(model=model, algorithm=criterion.name, structured=True, layer_rate=rate,
                       layer_channels={n: (before[n], after[n]) for n in before}, targets=targets,
                       removed_inputs=ledger.removed_inputs)
