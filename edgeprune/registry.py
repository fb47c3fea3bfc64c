"""Registries: name -> object tables for every pluggable part of the pipeline.

Each registry loads only its own built-ins, the first time it is read: either the
stage module that registers them while it is imported (models, algorithms, ...),
or, for the stages above the config (latency backends, variants, executors), a
table of `name -> "module:attribute"` entries imported one by one when asked for,
so that validating a config knows every name without importing the sweep or the
deployment code. The installed plugin packages (entry-point group
`edgeprune.plugins`) are imported on the first read of any registry; a plugin's
registration loads the built-ins of the registry it writes to first, so that a
name taken twice is caught.

Registrations made outside edgeprune's own modules are *plugin entries*; the Ray
executor ships them to every worker (`plugin_snapshot` / `restore_plugins`), so a
criterion registered in a driver script reaches the processes that prune.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterator, Optional, TypeVar

from .errors import EdgepruneError, first_line

T = TypeVar("T")

ENTRY_POINT_GROUP = "edgeprune.plugins"


def suggest(name: str, choices: list[str], n: int = 3) -> str:
    """' (did you mean: a, b?)' or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins: tuple[str, ...] = (), lazy: Optional[dict[str, str]] = None,
                 aliases: Optional[dict[str, str]] = None):
        self.kind = kind
        self._builtins = builtins
        self._loaded = not builtins
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = dict(lazy or {})       # name -> "module:attribute", imported on first get
        self._aliases: dict[str, str] = dict(aliases or {})
        self._plugin_names: set[str] = set()
        # resolves names that are not registered (e.g. 'package.module:factory' models); None: unknown
        self.fallback: Optional[Callable[[str], Optional[T]]] = None

    def _load(self) -> None:
        """Import the built-ins on first read; then (once the outermost such import is
        done, so plugins see a fully imported package) the installed plugins."""
        global _loading
        if not self._loaded:
            self._loaded = True
            _loading += 1
            try:
                for module in self._builtins:
                    importlib.import_module(module)
            finally:
                _loading -= 1
        if _loading == 0:
            load_entry_points()

    # -- writing ---------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj
        return deco

    def add(self, name: str, obj: T, *, plugin: bool = False, replace: bool = False) -> None:
        """Register `obj` as `name`; `plugin=True` (what `edgeprune.plugins` passes)
        marks it as one that worker processes must be sent."""
        if not isinstance(name, str) or not name:
            raise EdgepruneError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if plugin:
            self._load()        # a built-in registered later would otherwise collide silently
        if name in self._lazy:
            if not replace:
                raise EdgepruneError(f"{self.kind} {name!r} is registered twice; pick another name "
                                     "(or pass replace=True to override it on purpose)")
            del self._lazy[name]
        if name in self._items and not replace:
            raise EdgepruneError(f"{self.kind} {name!r} is registered twice; pick another name "
                                 "(or pass replace=True to override it on purpose)")
        self._items[name] = obj
        if plugin:
            self._plugin_names.add(name)

    def alias(self, alias: str, name: str) -> None:
        """Accept `alias` for `name` (e.g. 'ort' for 'onnxruntime')."""
        self._aliases[alias] = name

    # -- reading ---------------------------------------------------------------
    def canonical(self, name: str) -> str:
        """`name` with an alias resolved (unknown names come back as they are)."""
        self._load()
        return self._aliases.get(name, name)

    def get(self, name: str) -> T:
        self._load()
        name = self._aliases.get(name, name)
        if name in self._items:
            return self._items[name]
        if name in self._lazy:
            return self._resolve(name)
        found = self.fallback(name) if self.fallback and isinstance(name, str) else None
        if found is None:
            raise EdgepruneError(self.unknown_message(name))
        return found

    def unknown_message(self, name: str) -> str:
        names = self.names()
        return (f"unknown {self.kind} {name!r}{suggest(str(name), names)}; "
                f"choose one of: {', '.join(names)}")

    def _resolve(self, name: str) -> T:
        module, _, attr = self._lazy[name].partition(":")
        obj = getattr(importlib.import_module(module), attr)
        self._items[name] = obj
        del self._lazy[name]
        return obj

    def peek(self, name: str) -> bool:
        """Whether `name` is registered so far, loading nothing (for built-in modules
        that register while they are imported)."""
        return name in self._items

    def __contains__(self, name: object) -> bool:
        """Whether `name` is registered (or an alias); fallback names are not tried."""
        self._load()
        return name in self._items or name in self._lazy or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        self._load()
        return sorted({*self._items, *self._lazy})

    def items(self) -> list[tuple[str, T]]:
        """Every entry, lazy ones imported."""
        return [(n, self.get(n)) for n in self.names()]

    def plugin_items(self) -> dict[str, T]:
        return {n: self._items[n] for n in self._plugin_names if n in self._items}


# -- the registries ------------------------------------------------------------
MODELS: Registry = Registry("model", ("edgeprune.models",))
ALGORITHMS: Registry = Registry("pruning algorithm", ("edgeprune.prune",))
LAYER_TYPES: Registry = Registry("layer type", ("edgeprune.prune",))
ARCHITECTURES: Registry = Registry("architecture adapter", ("edgeprune.prune",))
DATASETS: Registry = Registry("dataset", ("edgeprune.data",))
OPTIMIZERS: Registry = Registry("optimizer", ("edgeprune.train",))
RECOVERY: Registry = Registry("recovery method", ("edgeprune.recover",))
# the stages above the config: their names are known here, their code is imported when used
LATENCY_BACKENDS: Registry = Registry("latency backend", lazy={
    "torch": "edgeprune.measure.backends.torch_eager:TorchEager",
    "onnxruntime": "edgeprune.measure.backends.onnxruntime:OnnxRuntime",
    "openvino": "edgeprune.measure.backends.openvino:OpenVINO",
    "litert": "edgeprune.measure.backends.litert:LiteRT",
    "tvm": "edgeprune.measure.backends.tvm:TVM",
    "device": "edgeprune.measure.backends.device:Device"},
    aliases={"eager": "torch", "pytorch": "torch", "ort": "onnxruntime", "onnx": "onnxruntime", "ov": "openvino",
             "tflite": "litert"})
ALLOCATORS: Registry = Registry("allocator", lazy={
    name: f"edgeprune.allocate.allocators:{attr}" for name, attr in
    (("uniform", "UNIFORM_ALLOCATOR"), ("global", "GLOBAL"), ("sensitivity", "SENSITIVITY"), ("latency", "LATENCY"))})
VARIANTS: Registry = Registry("model variant", lazy={"int8": "edgeprune.sweep.variants:int8",
                                                    "qat": "edgeprune.sweep.variants:qat"})
RELEASE_FORMATS: Registry = Registry("release format", ("edgeprune.release.formats",))
EXECUTORS: Registry = Registry("executor", lazy={"local": "edgeprune.sweep.executors.local:LocalExecutor",
                                                 "ray": "edgeprune.sweep.executors.ray_executor:RayExecutor"})

ALL = {r.kind: r for r in (MODELS, ALGORITHMS, LAYER_TYPES, ARCHITECTURES, DATASETS, OPTIMIZERS, RECOVERY,
                           LATENCY_BACKENDS, ALLOCATORS, VARIANTS, RELEASE_FORMATS, EXECUTORS)}


# -- plugins -------------------------------------------------------------------
_loading = 0                 # registries importing their built-ins right now
_entry_points_loaded = False
_loaded_modules: list[str] = []


def load_entry_points() -> None:
    """Import every installed plugin (entry-point group `edgeprune.plugins`) once.
    An entry point names a module (imported) or a callable (called with no
    arguments); either registers its parts through `edgeprune.plugins`."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin is named, not a traceback
            raise EdgepruneError(f"plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: "
                                 f"{first_line(e)}; fix or uninstall it") from None
        if callable(obj) and not isinstance(obj, type(importlib)):
            obj()


def load_plugins(modules: Optional[list[str]] = None) -> list[str]:
    """Import the installed plugins and the named plugin modules (config `plugins:`,
    `--plugin`); returns the modules imported by name so far."""
    load_entry_points()
    for name in modules or ():
        if name in _loaded_modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise EdgepruneError(f"plugin module {name!r} cannot be imported ({e}); is it installed or on "
                                 "PYTHONPATH?") from None
        except EdgepruneError:
            raise
        except Exception as e:
            raise EdgepruneError(f"plugin module {name!r} failed while importing: {type(e).__name__}: "
                                 f"{first_line(e)}") from None
        _loaded_modules.append(name)
    return list(_loaded_modules)


def plugin_snapshot() -> dict:
    """The plugin entries of every registry plus the plugin modules imported by name:
    what a worker process needs to see the same names (pickled by Ray)."""
    return {"modules": list(_loaded_modules),
            "entries": {kind: reg.plugin_items() for kind, reg in ALL.items() if reg.plugin_items()}}


def restore_plugins(snapshot: Optional[dict]) -> None:
    """In a worker: import the driver's plugin modules and add its other entries."""
    if not snapshot:
        return
    load_plugins(snapshot.get("modules"))
    for kind, entries in snapshot.get("entries", {}).items():
        reg = ALL[kind]
        reg._load()
        for name, obj in entries.items():
            if name not in reg._items and name not in reg._lazy:
                reg.add(name, obj, plugin=True)
