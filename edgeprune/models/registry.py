"""The model registry: one `ModelEntry` per name, one builder per family."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch.nn as nn

from ..registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about a model before building it."""
    name: str
    family: str
    # build(num_classes, pretrained) -> nn.Module; a pretrained build may keep its
    # native head (create_model replaces it when the class count differs).
    build: Callable[[int, bool], nn.Module]
    input_size: int = 224              # side the weights were trained at
    min_input_size: int = 32           # smallest side the architecture accepts
    mean: tuple = IMAGENET_MEAN        # normalisation its pretrained weights expect
    std: tuple = IMAGENET_STD
    has_pretrained: bool = True
    extra: dict = field(default_factory=dict)


MODELS: Registry[ModelEntry] = Registry("model")


def register(entry: ModelEntry) -> ModelEntry:
    MODELS.add(entry.name, entry)
    return entry


def lookup(name: str) -> Optional[ModelEntry]:
    return MODELS.get(name) if name in MODELS else None
