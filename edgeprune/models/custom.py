"""A user's own model: `package.module:factory`, called as factory(num_classes=N)
when it takes that argument, else factory()."""
from __future__ import annotations

import importlib
import inspect
import re

import torch.nn as nn

from ..errors import EdgepruneError
from .registry import ModelEntry

_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_factory_path(name: str) -> bool:
    return bool(_FACTORY_RE.match(name))


def resolve_factory(path: str):
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise EdgepruneError(f"model {path!r}: cannot import module {module_name!r} ({e}); "
                             "is it installed or on PYTHONPATH?") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise EdgepruneError(f"model {path!r}: module {module_name!r} has no callable {attr!r}")
    return factory


def factory_entry(path: str) -> ModelEntry:
    factory = resolve_factory(path)
    takes_classes = "num_classes" in inspect.signature(factory).parameters

    def build(num_classes: int, pretrained: bool) -> nn.Module:
        model = factory(num_classes=num_classes) if takes_classes else factory()
        if not isinstance(model, nn.Module):
            raise EdgepruneError(f"model {path!r}: the factory returned {type(model).__name__}, not an nn.Module")
        return model

    return ModelEntry(name=path, family="custom", build=build, input_size=32, min_input_size=1,
                      has_pretrained=False)
