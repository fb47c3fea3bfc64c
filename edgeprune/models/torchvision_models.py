"""Every torchvision classification model, under its torchvision name, with its
DEFAULT weights (their URL, class count, input side and normalisation)."""
from __future__ import annotations

import torch.nn as nn
import torchvision

from ..registry import MODELS
from .entry import ModelEntry, register_model
from .weights import Weights

# Auxiliary heads only serve training from scratch; a dependency tracer runs the
# model in eval mode and never sees them, so pruned models would break in train mode.
_WITHOUT_AUX = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}
_RANDOM_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True}, "inception_v3": {"aux_logits": False}}


def _pretrained_kwargs(name: str, tv_weights) -> dict:
    """What torchvision's own builder sets when it is given weights (torchvision
    0.19-0.29): the architecture must be laid out as the weights were trained."""
    if name in _WITHOUT_AUX:
        return {"transform_input": True, "aux_logits": True, "init_weights": False}
    return _size_kwargs(name, tv_weights)


def _size_kwargs(name: str, tv_weights) -> dict:
    """The input size a ViT or MaxViT is built for, with or without weights: the size the
    model is fed at (its weights' min_size; vit_h_14's is 518, not the builder's 224)."""
    if tv_weights is None:
        return {}
    if name == "maxvit_t":
        return {"input_size": tv_weights.meta["min_size"]}
    if name.startswith("vit_"):
        return {"image_size": tv_weights.meta["min_size"][0]}
    return {}


def _drop_aux(model: nn.Module) -> None:
    """As torchvision does when weights are loaded but auxiliary heads were not asked for."""
    model.aux_logits = False
    for attr in ("aux1", "aux2", "AuxLogits"):
        if hasattr(model, attr):
            setattr(model, attr, None)


def _builder(name: str, tv_weights):
    def build(num_classes: int, weights=None) -> nn.Module:
        kwargs = (_pretrained_kwargs(name, tv_weights) if weights is not None
                  else {**_RANDOM_KWARGS.get(name, {}), **_size_kwargs(name, tv_weights)})
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    return build


def _register_all() -> None:
    for name in torchvision.models.list_models(module=torchvision.models):
        if MODELS.peek(name):  # a CIFAR-native model of the same name takes precedence
            continue
        try:
            tv = torchvision.models.get_model_weights(name).DEFAULT
        except (ValueError, AttributeError, KeyError):
            register_model(ModelEntry(name=name, family="torchvision", build=_builder(name, None)))
            continue
        side = int(getattr(tv.transforms(), "crop_size", [224])[0])
        transforms = tv.transforms()
        weights = Weights(tv.url, num_classes=len(tv.meta["categories"]), input_size=side,
                          mean=tuple(getattr(transforms, "mean", (0.485, 0.456, 0.406))),
                          std=tuple(getattr(transforms, "std", (0.229, 0.224, 0.225))))
        register_model(ModelEntry(name=name, family="torchvision", build=_builder(name, tv), weights=weights,
                                  input_size=side, min_input_size=int(max(tv.meta.get("min_size", (32, 32)))),
                                  after_load=_drop_aux if name in _WITHOUT_AUX else None))


_register_all()
