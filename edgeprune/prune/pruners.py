"""Pruning algorithms: each is a `Pruner`, registered under its name.

A pruner prunes a model in place to a per-layer `rate` and reports what it
removed. Three kinds are built in; plugins add more (edgeprune.plugins):
  CriterionPruner     scores filters with a criterion (l1, fpgm, ...); Torch-Pruning
                      removes the lowest-scored channels of every targeted layer
  ChannelChoicePruner a function names the channels to remove (another framework's
                      masks, a lab's own selection); edgeprune cuts them out with
                      every coupled layer
  UnstructuredPruner  zeroes weights (sparsity only)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from .criteria import Criterion
from .result import PruneResult
from .structured import prune_by_choice, prune_by_criterion
from .unstructured import prune_unstructured


@dataclass
class PruneRequest:
    """Everything about a pruning step except the model and the rate."""
    example_inputs: torch.Tensor
    layers: Sequence[str] = ("conv2d",)
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    round_to: Optional[int] = None
    seed: int = 0
    calibration: Optional[list] = None       # (images, labels) batches, for pruners that need data
    # per-layer rates relative to the layers' present channels, when they differ (a cascade
    # link prunes its parent down to a fraction of the ORIGINAL channels); None: `rate` everywhere
    layer_ratios: Optional[dict[str, float]] = None


class Pruner:
    """The interface: `pruner(model, rate, request) -> PruneResult`, pruning in place."""
    name: str = ""
    description: str = ""
    structured: bool = True
    needs_gradients: bool = False       # True: the trial passes calibration batches

    @property
    def needs_data(self) -> bool:
        return self.needs_gradients

    def __call__(self, model: nn.Module, rate: float, request: PruneRequest) -> PruneResult:
        raise NotImplementedError


class CriterionPruner(Pruner):
    def __init__(self, criterion: Criterion):
        self.criterion = criterion
        self.name, self.description = criterion.name, criterion.description
        self.needs_gradients = criterion.needs_gradients

    def __call__(self, model, rate, request):
        return prune_by_criterion(model, self.criterion, rate, request.example_inputs, request.layers,
                                  request.include, request.exclude, round_to=request.round_to, seed=request.seed,
                                  calibration=request.calibration, layer_ratios=request.layer_ratios)


# choose(model, rate, request) -> {layer name: original output channels to remove, or a keep-mask}
ChannelChoice = Callable[[nn.Module, float, PruneRequest], Mapping[str, Sequence[int]]]


class ChannelChoicePruner(Pruner):
    def __init__(self, name: str, choose: ChannelChoice, description: str = "", needs_gradients: bool = False):
        self.name, self.choose, self.description = name, choose, description
        self.needs_gradients = needs_gradients

    def __call__(self, model, rate, request):
        model.eval()
        choice = self.choose(model, rate, request)
        if not isinstance(choice, Mapping):
            raise TypeError(f"pruner {self.name!r} must return {{layer name: channels to remove}}, "
                            f"got {type(choice).__name__}")
        return prune_by_choice(model, choice, request.example_inputs, self.name, rate, request.layers,
                               request.include, request.exclude)


class UnstructuredPruner(Pruner):
    name, structured = "unstructured_l1", False
    description = "unstructured weight magnitude: sparsity only"

    def __call__(self, model, rate, request):
        return prune_unstructured(model, rate, request.layers, request.include, request.exclude)
