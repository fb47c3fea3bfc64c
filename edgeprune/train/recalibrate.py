"""BatchNorm recalibration after pruning: the running statistics were estimated on
the unpruned network's activations; re-estimating them on a few training batches
(no gradients) repairs most of the accuracy that pruning alone destroys."""
from __future__ import annotations

import time
from typing import Iterable

import torch
import torch.nn as nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, num_batches: int) -> float:
    """Reset every BatchNorm's running statistics and re-estimate them as the plain
    average over `num_batches` (images, labels) batches in train mode; the model
    ends in eval mode. Returns the seconds it took (0 when there is no BatchNorm)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or num_batches <= 0:
        return 0.0
    start = time.perf_counter()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None             # cumulative average over the batches, not an exponential one
    device = next(model.parameters()).device
    model.train()
    try:
        for i, (x, _) in enumerate(batches):
            if i >= num_batches:
                break
            model(x.to(device, non_blocking=True))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return time.perf_counter() - start
