"""Which layers a sweep prunes: layer types, narrowed by fnmatch name patterns.
The final classifier is never a target."""
from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Sequence

import torch.nn as nn

from ..models.heads import classifier_name
from ..registry import Registry

LAYER_TYPES: Registry[type] = Registry("layer type")
LAYER_TYPES.add("conv2d", nn.Conv2d)
LAYER_TYPES.add("linear", nn.Linear)

PRUNABLE = (nn.Conv2d, nn.Linear)


def select_layers(model: nn.Module, layers: Sequence[str] = ("conv2d",), include: Sequence[str] = (),
                  exclude: Sequence[str] = ()) -> tuple[list[str], list[nn.Module]]:
    """(names of the targeted layers, every other conv/linear module: to be left whole)."""
    types = tuple(LAYER_TYPES.get(t) for t in layers)
    head = classifier_name(model)
    targets, ignored = [], []
    for name, m in model.named_modules():
        if not isinstance(m, PRUNABLE):
            continue
        wanted = (isinstance(m, types) and name != head
                  and (not include or any(fnmatchcase(name, p) for p in include))
                  and not any(fnmatchcase(name, p) for p in exclude))
        (targets.append(name) if wanted else ignored.append(m))
    return targets, ignored


def out_channels(model: nn.Module) -> dict[str, int]:
    """Output channels (features) of every conv/linear layer, by name."""
    return {name: (m.out_channels if isinstance(m, nn.Conv2d) else m.out_features)
            for name, m in model.named_modules() if isinstance(m, PRUNABLE)}
