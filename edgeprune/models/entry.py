"""What the model registry knows about a model before building it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch.nn as nn

from ..registry import MODELS
from .weights import IMAGENET_MEAN, IMAGENET_STD, Weights

# build(num_classes, weights) -> the architecture with a num_classes-way head, randomly
# initialised; laid out as `weights` expects when given (create_model then loads them)
Builder = Callable[[int, Optional[Weights]], nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    build: Builder
    weights: Optional[Weights] = None       # the published weights and the preprocessing they expect
    input_size: int = 224                   # side to train and measure at (the weights' when given)
    min_input_size: int = 32                # smallest side the architecture accepts
    mean: tuple = IMAGENET_MEAN             # normalisation for checkpoints when no weights say otherwise
    std: tuple = IMAGENET_STD
    after_load: Optional[Callable[[nn.Module], None]] = None   # e.g. drop auxiliary heads the weights carried

    @property
    def has_pretrained(self) -> bool:
        return self.weights is not None

    @property
    def preprocessing(self) -> tuple[tuple, tuple]:
        """(mean, std) that the model's pretrained weights (or checkpoints) expect."""
        return (self.weights.mean, self.weights.std) if self.weights else (self.mean, self.std)


def register_model(entry: ModelEntry, *, plugin: bool = False, replace: bool = False) -> ModelEntry:
    MODELS.add(entry.name, entry, plugin=plugin, replace=replace)
    return entry
