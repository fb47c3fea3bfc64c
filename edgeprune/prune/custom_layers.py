"""Torch-Pruning support for edgeprune's own parameter-free layers.

Torch-Pruning accepts a pruner per custom module type; it then treats the module
as a leaf whose input and output channels are pruned by that pruner. Register
yours with `register_layer_pruner`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from ..models.cifar_resnet import ChannelMapShortcut

LAYER_PRUNERS: dict[type, tp.pruner.BasePruningFunc] = {}


def register_layer_pruner(module_type: type, pruner: tp.pruner.BasePruningFunc) -> None:
    LAYER_PRUNERS[module_type] = pruner


def _remaining(n: int, removed: Sequence[int]) -> torch.Tensor:
    """new_index[old] for kept channels, -1 for removed ones."""
    keep = torch.ones(n, dtype=torch.bool)
    keep[torch.as_tensor(list(removed), dtype=torch.long)] = False
    new_index = torch.full((n,), -1, dtype=torch.long)
    new_index[keep] = torch.arange(int(keep.sum()))
    return new_index


class ChannelMapPruner(tp.pruner.BasePruningFunc):
    """Keeps `src`/`dst` of a ChannelMapShortcut consistent: a removed input drops
    its map entry; a removed output drops its entry and renumbers the rest."""
    TARGET_MODULES = ChannelMapShortcut

    def _drop(self, layer: ChannelMapShortcut, idxs: Sequence[int], side: str) -> ChannelMapShortcut:
        n = layer.in_channels if side == "src" else layer.out_channels
        new_index = _remaining(n, idxs)
        mapped = new_index[getattr(layer, side)]
        keep = mapped >= 0
        layer.src = (layer.src if side == "dst" else mapped)[keep]
        layer.dst = (layer.dst if side == "src" else mapped)[keep]
        if side == "src":
            layer.in_channels = n - len(set(idxs))
        else:
            layer.out_channels = n - len(set(idxs))
        return layer

    def prune_out_channels(self, layer, idxs):
        return self._drop(layer, idxs, "dst")

    def prune_in_channels(self, layer, idxs):
        return self._drop(layer, idxs, "src")

    def get_out_channels(self, layer):
        return layer.out_channels

    def get_in_channels(self, layer):
        return layer.in_channels


register_layer_pruner(ChannelMapShortcut, ChannelMapPruner())


# -- cutting channels out of an unpruned model (the reference for equivalence) --

def mixes_channels(module: nn.Module) -> bool:
    """Whether the module reads channels by index (so removing one must be recorded);
    per-channel layers such as BatchNorm only shrink along."""
    return isinstance(module, (nn.Conv2d, nn.Linear, ChannelMapShortcut))


def cut_inputs(module: nn.Module, removed: Sequence[int]) -> None:
    """Make `module` ignore the given input channels, without changing shapes."""
    idx = torch.as_tensor(sorted(set(removed)), dtype=torch.long)
    with torch.no_grad():
        if isinstance(module, nn.Conv2d):
            if module.groups == 1:
                module.weight[:, idx] = 0
            else:  # grouped/depthwise: input channel c feeds the filters of its group
                per_group_in = module.in_channels // module.groups
                per_group_out = module.out_channels // module.groups
                for c in idx.tolist():
                    g, k = divmod(c, per_group_in)
                    module.weight[g * per_group_out:(g + 1) * per_group_out, k] = 0
        elif isinstance(module, nn.Linear):
            module.weight[:, idx] = 0
        elif isinstance(module, ChannelMapShortcut):
            keep = ~torch.isin(module.src, idx)
            module.src, module.dst = module.src[keep], module.dst[keep]
        else:
            raise TypeError(f"cannot cut input channels of {type(module).__name__}")
