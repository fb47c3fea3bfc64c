"""Which layers a sweep prunes: layer types (a registry: `conv2d`, `linear`, or a
plugin's), narrowed by fnmatch name patterns. The final classifier is never a target."""
from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Sequence

import torch.nn as nn

from ..models.heads import classifier_name
from ..registry import LAYER_TYPES

LAYER_TYPES.add("conv2d", nn.Conv2d)
LAYER_TYPES.add("linear", nn.Linear)


def root_types(layers: Sequence[str]) -> list[type]:
    return [LAYER_TYPES.get(t) for t in layers]


def _prunable() -> tuple[type, ...]:
    return tuple({t for _, t in LAYER_TYPES.items()})


def select_layers(model: nn.Module, layers: Sequence[str] = ("conv2d",), include: Sequence[str] = (),
                  exclude: Sequence[str] = ()) -> tuple[list[str], list[nn.Module]]:
    """(names of the targeted layers, every other prunable module: to be left whole)."""
    types = tuple(root_types(layers))
    prunable = _prunable()
    head = classifier_name(model)
    targets, ignored = [], []
    for name, m in model.named_modules():
        if not isinstance(m, prunable):
            continue
        wanted = (isinstance(m, types) and name != head
                  and (not include or any(fnmatchcase(name, p) for p in include))
                  and not any(fnmatchcase(name, p) for p in exclude))
        (targets.append(name) if wanted else ignored.append(m))
    return targets, ignored


def out_channels(model: nn.Module) -> dict[str, int]:
    """Output channels (features) of every prunable layer, by name."""
    prunable = _prunable()
    return {name: int(getattr(m, "out_channels", None) or m.out_features)
            for name, m in model.named_modules() if isinstance(m, prunable)}
