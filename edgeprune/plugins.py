"""The plugin API: how a package (or a lab's script) adds its parts to edgeprune.

    from edgeprune import plugins

    @plugins.register_criterion("cosine", description="redundancy with the nearest filter")
    def cosine(filters):                       # filters.weight: n_filters x fan-in
        ...                                    # -> one score per filter, higher = keep

A plugin is found in three ways, in the driver and in every Ray worker alike:
  * installed packages declare the entry-point group `edgeprune.plugins`
    (pyproject: [project.entry-points."edgeprune.plugins"] name = "package.module");
  * a config's `plugins: [module, ...]` key;
  * `edgeprune --plugin module ...` on the command line.
Registrations made in a driver script (no module to import) are shipped to the
Ray workers with each task. Registered names are valid in configs and CLI
choices exactly like the built-in ones.
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

from .registry import (ALGORITHMS, ALLOCATORS, ARCHITECTURES, DATASETS, EXECUTORS, LATENCY_BACKENDS, LAYER_TYPES,
                       OPTIMIZERS, RECOVERY, RELEASE_FORMATS, VARIANTS, load_plugins)

__all__ = ["register_criterion", "register_pruner", "register_model_family", "register_dataset",
           "register_optimizer", "register_latency_backend", "register_layer_type", "register_architecture",
           "register_executor",
           "register_variant", "register_release_format", "register_recovery", "register_allocator", "load_plugins",
           "Filters", "Pruner", "PruneRequest", "Weights"]


def __getattr__(name: str):
    """The types a plugin implements against, imported on first use."""
    if name in ("Filters", "Pruner", "PruneRequest"):
        from . import prune
        return getattr(prune, name)
    if name == "Weights":
        from .models import Weights
        return Weights
    raise AttributeError(name)


def _decorator_or_call(register: Callable, obj):
    if obj is not None:
        register(obj)
        return obj

    def deco(fn):
        register(fn)
        return fn
    return deco


def register_criterion(name: str, score: Optional[Callable] = None, *, needs_gradients: bool = False,
                       description: str = "", replace: bool = False):
    """A per-filter criterion, and the pruning algorithm `name` built on it.

    `score(filters) -> Tensor[n]` gets an `edgeprune.prune.Filters` view of one
    producing layer (weight as filters x fan-in; grad / grad_sq when
    `needs_gradients`; the following BatchNorm's scale as bn_weight) and returns one
    score per filter: the lowest go. Usable as a decorator."""
    from .prune import Criterion, CriterionPruner

    def register(fn):
        criterion = Criterion(name, fn, needs_gradients, description or (fn.__doc__ or "").strip().split("\n")[0])
        ALGORITHMS.add(name, CriterionPruner(criterion), plugin=True, replace=replace)
    return _decorator_or_call(register, score)


def register_pruner(name: str, pruner=None, *, description: str = "", needs_gradients: bool = False,
                    replace: bool = False):
    """A whole pruning algorithm that brings its own channel choice: either a
    `Pruner` instance (`pruner(model, rate, request) -> PruneResult`, in place), or a
    function `choose(model, rate, request) -> {layer name: channels to remove (or a
    keep-mask)}`, whose choice edgeprune cuts out with every coupled layer.
    Usable as a decorator."""
    from .prune import ChannelChoicePruner, Pruner

    def register(obj):
        if isinstance(obj, Pruner):
            entry = obj
            entry.name = entry.name or name
        elif callable(obj):
            entry = ChannelChoicePruner(name, obj, description or (obj.__doc__ or "").strip().split("\n")[0],
                                        needs_gradients)
        else:
            raise TypeError(f"register_pruner({name!r}): give a Pruner or a function, not {type(obj).__name__}")
        ALGORITHMS.add(name, entry, plugin=True, replace=replace)
    return _decorator_or_call(register, pruner)


def register_model_family(family: str, builders: Mapping[str, Callable], *, weights: Mapping = {},
                          input_size: int = 224, min_input_size: int = 32, mean: Sequence[float] = (0.485, 0.456,
                          0.406), std: Sequence[float] = (0.229, 0.224, 0.225), replace: bool = False) -> list[str]:
    """Models `name -> build(num_classes) -> nn.Module`, with their published weights
    (`name -> Weights(url, num_classes, mean, std, input_size)`): timm-style, the
    weights and the preprocessing they expect travel together. `input_size`,
    `mean` and `std` apply to models without weights (and to their checkpoints)."""
    from .models import ModelEntry, Weights, register_model
    names = []
    for name, build in builders.items():
        w = weights.get(name)
        if w is not None and not isinstance(w, Weights):
            raise TypeError(f"register_model_family({family!r}): weights of {name!r} must be a Weights")

        def arch(num_classes, weights_=None, _build=build):
            return _build(num_classes)
        register_model(ModelEntry(name=name, family=family, build=arch, weights=w,
                                  input_size=w.input_size if w else input_size, min_input_size=min_input_size,
                                  mean=tuple(mean), std=tuple(std)), plugin=True, replace=replace)
        names.append(name)
    return names


def register_dataset(name: str, load: Optional[Callable] = None, *, check: Optional[Callable] = None,
                     options: Optional[type] = None, description: str = "", replace: bool = False):
    """A dataset: `load(dataset_config) -> edgeprune.data.DataSplits` (in-memory uint8
    images), an optional `check(dataset_config)` that raises ConfigError before
    anything is written, and `options`, a pydantic model of `dataset.options`
    (validated with the config; the loader reads `cfg.options`). Usable as a decorator."""
    from .data import DatasetSource

    def register(fn):
        DATASETS.add(name, DatasetSource(load=fn, check=check, options=options, description=description),
                     plugin=True, replace=replace)
    return _decorator_or_call(register, load)


def register_optimizer(name: str, factory: Optional[Callable] = None, *, replace: bool = False):
    """`factory(model, finetune_config) -> torch.optim.Optimizer` (use
    edgeprune.train.optim.param_groups to keep BatchNorm and biases undecayed).
    Usable as a decorator."""
    return _decorator_or_call(lambda f: OPTIMIZERS.add(name, f, plugin=True, replace=replace), factory)


def register_latency_backend(name: str, backend: Optional[type] = None, *, replace: bool = False):
    """A class like edgeprune.measure.LatencyBackend: made once per sweep with
    the config's spec, `measure(files, quantized) -> Measurement | None`.
    Usable as a class decorator."""
    return _decorator_or_call(lambda c: LATENCY_BACKENDS.add(name, c, plugin=True, replace=replace), backend)


def register_layer_type(name: str, module_type: type, *, replace: bool = False) -> None:
    """A module type that `target.layers` may name (Torch-Pruning must know how to prune it)."""
    LAYER_TYPES.add(name, module_type, plugin=True, replace=replace)


def register_architecture(name: str, adapter, *, replace: bool = False) -> None:
    """What an architecture needs for Torch-Pruning (edgeprune.prune.architectures.Adapter:
    pruners for its opaque modules, forwards to trace with, layers to keep whole,
    attribute fixes after pruning)."""
    ARCHITECTURES.add(name, adapter, plugin=True, replace=replace)


def register_executor(name: str, executor: Optional[type] = None, *, replace: bool = False):
    """A class `Executor(cfg)` with `run(job) -> iterator of edgeprune.sweep.events`
    and `close()`. Usable as a class decorator."""
    return _decorator_or_call(lambda c: EXECUTORS.add(name, c, plugin=True, replace=replace), executor)


def register_variant(name: str, make: Optional[Callable] = None, *, replace: bool = False):
    """A `quantize:` variant: `make(model, trained_metrics, ctx, unpruned, spec) -> metrics`.
    Usable as a decorator."""
    return _decorator_or_call(lambda f: VARIANTS.add(name, f, plugin=True, replace=replace), make)


def register_release_format(name: str, write: Optional[Callable] = None, *, replace: bool = False):
    """A format `edgeprune deploy --format`/`release_trial(formats=[...])` can write:
    `write(release)` gets an edgeprune.release.Release (the model, the run's config,
    `inputs.check` images, the folder `out`) and records its file and check in
    `release.result.files[name]` / `.checks[name]` (check parity with
    edgeprune.release.formats.parity). Usable as a decorator."""
    return _decorator_or_call(lambda f: RELEASE_FORMATS.add(name, f, plugin=True, replace=replace), write)


def register_recovery(name: str, method: Optional[Callable] = None, *, replace: bool = False):
    """A way to rebuild pruned layers without fine-tuning (`prune.recovery: NAME`):
    `method(unpruned, pruned, images, *, kept_outputs, count, seed) -> ReconstructReport`
    (edgeprune.recover), changing `pruned` in place; `images` are normalised,
    unlabeled calibration images. Usable as a decorator."""
    return _decorator_or_call(lambda f: RECOVERY.add(name, f, plugin=True, replace=replace), method)


def register_allocator(name: str, allocator=None, *, cost: str = "macs", needs_map: bool = False,
                       needs_scores: bool = False, description: str = "", replace: bool = False):
    """A way to split a pruned trial's budget over its channel groups (`allocation: [NAME]`):
    an `edgeprune.allocate.Allocator`, or a function `allocate(problem) -> {group: channels
    kept}` given an `edgeprune.allocate.Problem` (its groups, the widths each may take, the
    cost of widths and the budget, the sensitivity map when `needs_map`, the normalised
    channel scores when `needs_scores`). `cost`: what the budget counts, "macs" (parameters
    under a params target) or "latency" (the first latency backend's, predicted by a model
    fitted to its timings). Usable as a decorator."""
    if cost not in ("macs", "latency"):
        raise ValueError(f"register_allocator({name!r}): cost is 'macs' or 'latency', not {cost!r}")

    def register(obj):
        from .allocate import Allocator, FunctionAllocator
        if isinstance(obj, Allocator):
            entry = obj
            entry.name = entry.name or name
        elif callable(obj):
            entry = FunctionAllocator(name, obj, cost, needs_map, needs_scores,
                                      description or (obj.__doc__ or "").strip().split("\n")[0])
        else:
            raise TypeError(f"register_allocator({name!r}): give an Allocator or a function, not {type(obj).__name__}")
        ALLOCATORS.add(name, entry, plugin=True, replace=replace)
    return _decorator_or_call(register, allocator)
