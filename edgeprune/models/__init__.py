"""Models: `create_model(name, num_classes, ...)` is the single entry point.

Names resolve through one registry: CIFAR-native models (resnet20/32/44/56,
cifar_vgg11/16), every torchvision classifier, or `package.module:factory`.
The built model carries `model.edgeprune_meta` (input size, normalisation,
whether its head was replaced) for the stages downstream.
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from ..errors import EdgepruneError
from . import cifar_resnet, cifar_vgg, torchvision_models  # noqa: F401  (register families)
from .checkpoint import load_into, mismatches, read_checkpoint
from .custom import factory_entry, is_factory_path
from .heads import classifier_name, replace_head
from .registry import MODELS, ModelEntry, lookup

__all__ = ["create_model", "list_models", "model_entry", "is_known_model", "model_names",
           "classifier_name", "ModelEntry"]


def model_names() -> list[str]:
    return MODELS.names()


def list_models(family: Optional[str] = None) -> list[str]:
    return [n for n in MODELS.names() if family is None or MODELS.get(n).family == family]


def is_known_model(name: str) -> bool:
    return name in MODELS or is_factory_path(name)


def model_entry(name: str) -> ModelEntry:
    if name in MODELS:
        return MODELS.get(name)
    if is_factory_path(name):
        return factory_entry(name)
    return MODELS.get(name)  # raises with suggestions


def create_model(name: str, num_classes: int, pretrained: bool = True,
                 checkpoint: Optional[str] = None) -> nn.Module:
    """Build `name` with a `num_classes`-way head.

    Weights come from `checkpoint` (a state dict file, loaded weights-only) when
    given, else from the registry's pretrained weights when `pretrained`, else
    random. When the weights' head has another class count, the head is replaced.
    """
    entry = model_entry(name)
    if checkpoint:
        state = read_checkpoint(checkpoint)
        model = entry.build(num_classes, False)
        head = classifier_name(model)
        missing, unexpected, shapes = mismatches(model, state)
        if shapes and not missing and not unexpected and all(k.startswith(head + ".") for k in shapes):
            model = entry.build(int(state[head + ".weight"].shape[0]), False)
        load_into(model, state, source=str(checkpoint))
        source = f"checkpoint:{checkpoint}"
    elif pretrained:
        if not entry.has_pretrained:
            raise EdgepruneError(f"model {name!r} has no pretrained weights; "
                                 "set `pretrained: false` or give a `checkpoint:`")
        model = entry.build(num_classes, True)
        source = "pretrained"
    else:
        model = entry.build(num_classes, False)
        source = "random"
    head_replaced = replace_head(model, num_classes)
    model.edgeprune_meta = {
        "name": name, "family": entry.family, "weights": source, "head_replaced": head_replaced,
        "input_size": entry.input_size, "min_input_size": entry.min_input_size,
        "mean": entry.mean, "std": entry.std, "num_classes": num_classes,
    }
    return model
