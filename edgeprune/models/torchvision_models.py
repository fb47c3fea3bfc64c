"""Every torchvision classification model, under its torchvision name."""
from __future__ import annotations

import torch.nn as nn
import torchvision

from .registry import MODELS, ModelEntry, register
from .weights import _NETWORK_ERRORS, _offline

# Auxiliary heads only serve training from scratch; a dependency tracer runs the
# model in eval mode and never sees them, so pruned models would break in train mode.
_BUILD_KWARGS = {
    "googlenet": {"aux_logits": False},
    "inception_v3": {"aux_logits": False},
}


def _builder(name: str):
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        kwargs = dict(_BUILD_KWARGS.get(name, {}))
        if not pretrained:
            if name == "googlenet":
                kwargs["init_weights"] = True
            return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
        weights = torchvision.models.get_model_weights(name).DEFAULT
        try:
            return torchvision.models.get_model(name, weights=weights, **kwargs)
        except _NETWORK_ERRORS as e:
            raise _offline(name, weights.url, e) from None
    return build


def _register_all() -> None:
    for name in torchvision.models.list_models(module=torchvision.models):
        if name in MODELS:  # a CIFAR-native model of the same name takes precedence
            continue
        try:
            meta = torchvision.models.get_model_weights(name).DEFAULT.meta
            min_side = max(meta.get("min_size", (32, 32)))
            transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
            side = int(getattr(transforms, "crop_size", [224])[0])
        except (ValueError, AttributeError, KeyError):
            min_side, side = 32, 224
        register(ModelEntry(name=name, family="torchvision", build=_builder(name),
                            input_size=side, min_input_size=int(min_side)))


_register_all()
