"""A user's own model: `package.module:factory`, called as factory(num_classes=N)
when it takes that argument, else factory(). Resolved by the model registry when a
name is not registered (its fallback)."""
from __future__ import annotations

import importlib
import inspect
import re
from typing import Optional

import torch.nn as nn

from ..errors import EdgepruneError
from .entry import ModelEntry

_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_RESOLVED: dict[str, ModelEntry] = {}


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


def factory_entry(path: str) -> Optional[ModelEntry]:
    """The entry of `package.module:factory` (its module imported now), or None when
    `path` does not look like one."""
    if not is_factory_path(path):
        return None
    if path not in _RESOLVED:
        factory = resolve_factory(path)
        takes_classes = "num_classes" in inspect.signature(factory).parameters

        def build(num_classes: int, weights=None) -> nn.Module:
            model = factory(num_classes=num_classes) if takes_classes else factory()
            if not isinstance(model, nn.Module):
                raise EdgepruneError(f"model {path!r}: the factory returned {type(model).__name__}, "
                                     "not an nn.Module")
            return model

        _RESOLVED[path] = ModelEntry(name=path, family="custom", build=build, input_size=32, min_input_size=1)
    return _RESOLVED[path]
