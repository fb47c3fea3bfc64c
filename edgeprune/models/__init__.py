"""Models: `create_model(name, num_classes, ...)` is the single entry point.

Names resolve through the model registry: CIFAR-native models (resnet20/32/44/56,
cifar_vgg11/16), every torchvision classifier, a plugin's family, or
`package.module:factory`. Each entry carries its published weights together with
the preprocessing they expect. The built model carries `model.edgeprune_meta`
(input size, normalisation, whether its head was replaced) for the stages downstream.
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from ..errors import EdgepruneError
from ..registry import MODELS
from . import cifar_resnet, cifar_vgg, torchvision_models  # noqa: F401  (register families)
from .checkpoint import load_into, mismatches, read_checkpoint
from .custom import factory_entry
from .entry import ModelEntry, register_model
from .heads import classifier_name, replace_head
from .weights import IMAGENET_MEAN, IMAGENET_STD, Weights, load_weights, weights_file

MODELS.fallback = factory_entry

__all__ = ["create_model", "check_weights", "list_models", "model_entry", "classifier_name", "ModelEntry", "Weights",
           "register_model", "weights_file", "IMAGENET_MEAN", "IMAGENET_STD"]


def list_models(family: Optional[str] = None) -> list[str]:
    return [n for n, e in MODELS.items() if family is None or e.family == family]


def model_entry(name: str) -> ModelEntry:
    return MODELS.get(name)


def create_model(name: str, num_classes: int, pretrained: bool = True, checkpoint: Optional[str] = None,
                 weights_dir: Optional[str] = None, architecture_only: bool = False) -> nn.Module:
    """Build `name` with a `num_classes`-way head.

    Weights come from `checkpoint` (a state dict file, loaded weights-only) when
    given, else from the registry's published weights when `pretrained` (from
    `weights_dir`, or downloaded into the torch hub cache), else random. When the
    weights' head has another class count, the head is replaced.

    With `architecture_only=True` the same module structure is built without reading
    any file (to load a saved trial model into).
    """
    entry = model_entry(name)
    if checkpoint:
        if architecture_only:
            model = entry.build(num_classes, None)
        else:
            state = read_checkpoint(checkpoint)
            model = entry.build(num_classes, None)
            head = classifier_name(model)
            missing, unexpected, shapes = mismatches(model, state)
            if shapes and not missing and not unexpected and all(k.startswith(head + ".") for k in shapes):
                model = entry.build(int(state[head + ".weight"].shape[0]), None)
            load_into(model, state, source=str(checkpoint))
        source = f"checkpoint:{checkpoint}"
    elif pretrained:
        if not entry.has_pretrained:
            raise EdgepruneError(f"model {name!r} has no pretrained weights; "
                                 "set `pretrained: false` or give a `checkpoint:`")
        model = entry.build(entry.weights.num_classes, entry.weights)
        if not architecture_only:
            load_into(model, load_weights(entry.weights, name, weights_dir), source=f"{name} pretrained weights")
        if entry.after_load:
            entry.after_load(model)
        source = "pretrained"
    else:
        model = entry.build(num_classes, None)
        source = "random"
    head_replaced = replace_head(model, num_classes)
    mean, std = entry.preprocessing
    model.edgeprune_meta = {
        "name": name, "family": entry.family, "weights": source, "head_replaced": head_replaced,
        "input_size": entry.input_size, "min_input_size": entry.min_input_size,
        "mean": mean, "std": std, "num_classes": num_classes,
    }
    return model


def check_weights(name: str, num_classes: int, pretrained: bool = True, checkpoint: Optional[str] = None,
                  weights_dir: Optional[str] = None) -> None:
    """Fail now, in one line naming the file, if the model's weights cannot be had:
    a checkpoint that is missing, unreadable or does not fit the architecture, or
    published weights that are neither in `weights_dir` nor downloadable (they are
    downloaded into the torch hub cache here, once, when online)."""
    entry = model_entry(name)
    if checkpoint:
        create_model(name, num_classes, pretrained=False, checkpoint=checkpoint)
    elif pretrained:
        if not entry.has_pretrained:
            raise EdgepruneError(f"model {name!r} has no pretrained weights; "
                                 "set `pretrained: false` or give a `checkpoint:`")
        weights_file(entry.weights, name, weights_dir)
