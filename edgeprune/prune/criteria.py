"""Per-filter scores: a higher score means a more important filter.

A criterion is just a callable: it gets one producing layer's filters as a
`Filters` view (the weight as a matrix, filters x fan-in, plus what else a
criterion may need) and returns one score per filter. Register one with
`edgeprune.plugins.register_criterion`; it then becomes a pruning algorithm.

The built-ins, computed on the layer's own weights as the papers define them:
  l1     Li et al. 2017: sum |w|
  l2     Li et al. 2017 (L2 variant): sqrt(sum w^2)
  fpgm   He et al. 2019: sum of Euclidean distances to the layer's other
         filters; filters near the geometric median are redundant, so they
         get the lowest scores and go first
  taylor Molchanov et al. 2019: |sum w * dL/dw| over the filter, from
         gradients accumulated on a few batches
  random uniform scores from the trial's seeded generator (the control)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn


@dataclass
class Filters:
    """What a criterion sees of one producing layer (only the channels in question)."""
    weight: torch.Tensor                    # filters x fan-in, float32
    generator: torch.Generator              # the trial's seeded generator
    name: str = ""                          # the layer's qualified name
    module: Optional[nn.Module] = None
    bias: Optional[torch.Tensor] = None
    grad: Optional[torch.Tensor] = None     # summed loss gradient, like `weight` (needs_gradients)
    grad_sq: Optional[torch.Tensor] = None  # mean squared batch gradient: a Fisher / Hessian-diagonal estimate
    bn_weight: Optional[torch.Tensor] = None  # scale (gamma) of the BatchNorm right after the layer, if any

    def __len__(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True)
class Criterion:
    name: str
    score: Callable[[Filters], torch.Tensor]
    needs_gradients: bool = False
    description: str = ""


def l1_norm(f: Filters) -> torch.Tensor:
    return f.weight.abs().sum(1)


def l2_norm(f: Filters) -> torch.Tensor:
    return f.weight.pow(2).sum(1).sqrt()


def geometric_median_distance(f: Filters) -> torch.Tensor:
    # n x n distances on the filter matrix: cheap even for 512 filters of 4,608
    # weights, unlike scoring every consumer layer's fan-in as well.
    return torch.cdist(f.weight.unsqueeze(0), f.weight.unsqueeze(0)).squeeze(0).sum(1)


def first_order_taylor(f: Filters) -> torch.Tensor:
    if f.grad is None:
        raise RuntimeError("taylor scores need gradients: pass calibration batches to prune_model")
    return (f.weight * f.grad).sum(1).abs()


def random_scores(f: Filters) -> torch.Tensor:
    return torch.rand(len(f), generator=f.generator)


BUILTIN = [
    Criterion("l1", l1_norm, description="filter L1 norm (Li et al. 2017)"),
    Criterion("l2", l2_norm, description="filter L2 norm (Li et al. 2017)"),
    Criterion("fpgm", geometric_median_distance, description="distance to the geometric median (He et al. 2019)"),
    Criterion("random", random_scores, description="random channels (control)"),
    Criterion("taylor", first_order_taylor, needs_gradients=True,
              description="first-order Taylor (Molchanov et al. 2019)"),
]
