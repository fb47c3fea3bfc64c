"""Example edgeprune plugin: other frameworks' importances adapted to edgeprune's
criterion interface, a lab's own criterion, and a pruner that brings its own masks.

A criterion gets one producing layer's filters (`edgeprune.prune.Filters`:
weight as filters x fan-in, grad / grad_sq when it needs gradients, bn_weight)
and returns one score per filter; edgeprune removes the lowest-scored channels of
every targeted layer, with every layer coupled to them.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune import plugins

_LAMP = tp.importance.LAMPImportance()


@plugins.register_criterion("tp_lamp", description="LAMP scores (Torch-Pruning's normaliser, Lee et al. 2021)")
def lamp(filters):
    """Layer-adaptive magnitude: each filter's squared L2 norm divided by the sum of
    the squared norms of the filters that are at least as large."""
    return _LAMP._lamp(filters.weight.pow(2).sum(1))


@plugins.register_criterion("tp_bn_scale", description="BatchNorm |gamma| (network slimming, Liu et al. 2017)")
def bn_scale(filters):
    """|gamma| of the BatchNorm right after the layer, as Torch-Pruning's
    BNScaleImportance; a layer with no BatchNorm after it falls back to its L1 norms."""
    if filters.bn_weight is None:
        return filters.weight.abs().sum(1)
    return filters.bn_weight.abs()


@plugins.register_criterion("tp_hessian", needs_gradients=True,
                            description="w^2 diag(H) (optimal brain damage, as Torch-Pruning's HessianImportance)")
def hessian(filters):
    """Sum over each filter of w^2 times the Hessian diagonal, estimated (as
    Torch-Pruning does) by the mean squared gradient over the calibration batches."""
    return (filters.weight.pow(2) * filters.grad_sq).sum(1)


@plugins.register_criterion("cosine_redundancy",
                            description="a lab's own: 1 - |cosine| to the most similar other filter")
def cosine_redundancy(filters):
    """A filter nearly parallel to another one adds little: score 1 - max |cos| to
    the others, scaled by the filter's norm so that dead filters still go first."""
    w = filters.weight
    norms = w.norm(dim=1).clamp_min(1e-12)
    unit = w / norms[:, None]
    cos = (unit @ unit.T).abs()
    cos.fill_diagonal_(0)
    return (1 - cos.max(1).values + 1e-6) * norms / norms.mean()


@plugins.register_pruner("mask_l1", description="keep-masks from outside edgeprune (L1 per layer)")
def mask_l1(model: nn.Module, rate: float, request):
    """What another framework hands over: a keep-mask per targeted conv (here from
    each layer's own L1 norms). edgeprune cuts the masked channels out physically,
    with every coupled layer, and skips channels a coupled layer already lost."""
    from edgeprune.prune import select_layers
    targets, _ = select_layers(model, request.layers, request.include, request.exclude)
    modules = dict(model.named_modules())
    masks = {}
    for name in targets:
        w = modules[name].weight.detach().flatten(1)
        n_drop = int(rate * w.shape[0])
        keep = torch.ones(w.shape[0], dtype=torch.bool)
        keep[w.abs().sum(1).argsort()[:n_drop]] = False
        masks[name] = keep
    return masks
