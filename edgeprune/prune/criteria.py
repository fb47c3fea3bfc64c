"""Per-filter scores: a higher score means a more important filter.

Each criterion sees one layer's filters as a matrix W (filters x fan-in),
computed on the layer's own weights as the papers define them:
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

from ..registry import Registry


@dataclass(frozen=True)
class Criterion:
    name: str
    score: Callable[[torch.Tensor, Optional[torch.Tensor], torch.Generator], torch.Tensor]
    needs_gradients: bool = False


CRITERIA: Registry[Criterion] = Registry("pruning criterion")


def _criterion(name: str, needs_gradients: bool = False):
    def deco(fn):
        CRITERIA.add(name, Criterion(name, fn, needs_gradients))
        return fn
    return deco


@_criterion("l1")
def l1_norm(w, grad, gen):
    return w.abs().sum(1)


@_criterion("l2")
def l2_norm(w, grad, gen):
    return w.pow(2).sum(1).sqrt()


@_criterion("fpgm")
def geometric_median_distance(w, grad, gen):
    # n x n distances on the filter matrix: cheap even for 512 filters of 4,608
    # weights, unlike scoring every consumer layer's fan-in as well.
    return torch.cdist(w.unsqueeze(0), w.unsqueeze(0)).squeeze(0).sum(1)


@_criterion("taylor", needs_gradients=True)
def first_order_taylor(w, grad, gen):
    if grad is None:
        raise RuntimeError("taylor scores need gradients: pass calibration batches to prune_model")
    return (w * grad).sum(1).abs()


@_criterion("random")
def random_scores(w, grad, gen):
    return torch.rand(w.shape[0], generator=gen)
