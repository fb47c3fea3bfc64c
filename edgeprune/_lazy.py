"""Module attributes imported on first use (PEP 562), so torch-free parts of the
package (the device agent) load on a machine without torch."""
from __future__ import annotations

import importlib
import sys


def lazy_getattr(package: str, names: dict[str, str]):
    """A module `__getattr__` that imports `names[attr]` (a submodule) on first use."""
    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(f".{names[name]}", package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
