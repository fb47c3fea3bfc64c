"""Structured (channel) pruning on Torch-Pruning's dependency graph: the removed
channels are physically cut out of every coupled layer.

Two ways to choose the channels: a criterion scores filters and Torch-Pruning's
MetaPruner removes the lowest `rate` of every targeted layer (`prune_by_criterion`),
or a pruner names the channels itself (`prune_by_choice`). Either way the
dependency graph records its pruning history, which `replay` applies to a fresh
copy of the architecture: that is how a saved trial model is rebuilt.
"""
from __future__ import annotations

import warnings
from typing import Iterable, Mapping, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from .criteria import Criterion
from .custom_layers import LAYER_PRUNERS, mixes_channels
from .architectures import adapters_for, tracing
from .importance import FilterImportance, following_batchnorms
from .result import PruneResult
from .targets import out_channels, root_types, select_layers


class _ChannelLedger:
    """Maps each pruning step's indices (relative to the layer as it is then) back
    to the original channel numbers, so the result can say what was removed."""

    def __init__(self, model: nn.Module, graph):
        self.graph = graph
        self.names = {m: n for n, m in model.named_modules()}
        self.in_maps: dict[str, list[int]] = {}
        self.out_maps: dict[str, list[int]] = {}
        self.removed_inputs: dict[str, list[int]] = {}

    def record(self, group) -> None:
        for dep, idxs in group:
            module = dep.target.module
            name = self.names.get(module)
            if not idxs or name is None or not mixes_channels(module):  # add, cat, BatchNorm: nothing to record
                continue
            if self.graph.is_out_channel_pruning_fn(dep.handler):
                self._drop(self.out_maps, name, self.graph.get_out_channels(module), idxs)
            elif self.graph.is_in_channel_pruning_fn(dep.handler):
                gone = self._drop(self.in_maps, name, self.graph.get_in_channels(module), idxs)
                self.removed_inputs.setdefault(name, []).extend(gone)

    @staticmethod
    def _drop(maps: dict, name: str, n: int, idxs) -> list[int]:
        current = maps.setdefault(name, list(range(n)))
        gone = set(idxs)
        maps[name] = [c for i, c in enumerate(current) if i not in gone]
        return [current[i] for i in sorted(gone)]

    def current_out(self, name: str, n: int) -> list[int]:
        """Original channel numbers of the layer's present output channels."""
        return self.out_maps.get(name, list(range(n)))


def accumulate_gradients(model: nn.Module, batches: Iterable) -> dict:
    """Sum loss gradients over calibration batches into `.grad` (eval mode: BN
    statistics stay put); returns each parameter's mean squared batch gradient."""
    model.eval()
    model.zero_grad(set_to_none=True)
    squares: dict[nn.Parameter, torch.Tensor] = {}
    previous: dict[nn.Parameter, torch.Tensor] = {}
    n = 0
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()
        n += 1
        for p in model.parameters():
            if p.grad is None:
                continue
            step = p.grad - previous.get(p, 0)          # this batch's gradient
            squares[p] = squares.get(p, 0) + step.detach().pow(2)
            previous[p] = p.grad.detach().clone()
    return {p: s / max(n, 1) for p, s in squares.items()}


def _graph_args(model: nn.Module, layers, include, exclude) -> tuple[list[str], list[nn.Module], list, list]:
    adapters = adapters_for(model)
    exclude = tuple(exclude) + tuple(p for a in adapters for p in a.exclude)
    targets, ignored = select_layers(model, layers, include, exclude)
    return targets, ignored, root_types(layers), adapters


def _pruners(adapters) -> dict:
    return {**LAYER_PRUNERS, **{t: p for a in adapters for t, p in a.pruners.items()}}


def _fix(model: nn.Module, adapters) -> None:
    for a in adapters:
        if a.after_prune is not None:
            a.after_prune(model)


def _result(model, algorithm, rate, before, targets, ledger, graph) -> PruneResult:
    after = out_channels(model)
    return PruneResult(model=model, algorithm=algorithm, structured=True, layer_rate=rate,
                       layer_channels={n: (before[n], after[n]) for n in before}, targets=targets,
                       removed_inputs=ledger.removed_inputs, kept_outputs=dict(ledger.out_maps),
                       kept_inputs=dict(ledger.in_maps), history=[list(h) for h in graph.pruning_history()])


def prune_by_criterion(model: nn.Module, criterion: Criterion, rate: float, example_inputs: torch.Tensor,
                       layers=("conv2d",), include=(), exclude=(), round_to: Optional[int] = None,
                       seed: int = 0, calibration: Optional[Iterable] = None,
                       layer_ratios: Optional[Mapping[str, float]] = None) -> PruneResult:
    """Remove `rate` of the output channels of every targeted layer (or each layer's
    own rate in `layer_ratios`, by name), in place."""
    targets, ignored, roots, adapters = _graph_args(model, layers, include, exclude)
    before = out_channels(model)
    grad_sq = {}
    if criterion.needs_gradients:
        if calibration is None:
            raise ValueError(f"the {criterion.name} criterion needs calibration batches")
        grad_sq = accumulate_gradients(model, calibration)
    model.eval()
    importance = FilterImportance(criterion, seed, names={m: n for n, m in model.named_modules()}, grad_sq=grad_sq)
    modules = dict(model.named_modules())
    by_layer = {modules[n]: r for n, r in (layer_ratios or {}).items() if n in modules}
    with tracing(adapters), warnings.catch_warnings():
        # token parameters (ViT's class token and position embedding) are pruned on their last
        # dimension, which is what they need: Torch-Pruning's notice about it is not for users
        warnings.filterwarnings("ignore", message=".*prune the last non-singleton dimension.*")
        # in/out_channel_groups given: Torch-Pruning's defaults are shared dicts it writes into
        pruner = tp.pruner.MetaPruner(
            model, example_inputs, importance=importance, pruning_ratio=rate if layer_ratios is None else 0.0,
            pruning_ratio_dict=by_layer or None, ignored_layers=ignored, root_module_types=roots, round_to=round_to,
            customized_pruners=_pruners(adapters), in_channel_groups={}, out_channel_groups={})
        importance.bns = following_batchnorms(pruner.DG)
        ledger = _ChannelLedger(model, pruner.DG)
        for group in pruner.step(interactive=True):
            ledger.record(group)
            group.prune()
    _fix(model, adapters)
    model.zero_grad(set_to_none=True)
    return _result(model, criterion.name, rate, before, targets, ledger, pruner.DG)


def prune_by_choice(model: nn.Module, choice: Mapping[str, Sequence[int]], example_inputs: torch.Tensor,
                    algorithm: str, rate: float, layers=("conv2d",), include=(), exclude=()) -> PruneResult:
    """Remove the output channels `choice` names ({layer: original channel indices, or
    a keep-mask}), each with every layer coupled to it, in place. Coupled layers must
    lose the same channels, so the first listed layer of a coupled group decides for
    the group and the others' choices are skipped; layers that are not targeted are
    refused."""
    targets, ignored, _, adapters = _graph_args(model, layers, include, exclude)
    before = out_channels(model)
    model.eval()
    with tracing(adapters):
        graph = tp.DependencyGraph().build_dependency(model, example_inputs, customized_pruners=_pruners(adapters),
                                                      verbose=False)
    ledger = _ChannelLedger(model, graph)
    modules = dict(model.named_modules())
    blocked = set(map(id, ignored))
    for name, chosen in choice.items():
        if name not in targets:
            raise ValueError(f"{algorithm}: layer {name!r} is not a pruning target (targets: "
                             f"{', '.join(targets[:5])}{'...' if len(targets) > 5 else ''})")
        module = modules[name]
        chosen = _as_indices(chosen, before[name], name, algorithm)
        if name in ledger.out_maps:      # already cut through a coupled layer: its group is decided
            continue
        present = ledger.current_out(name, graph.get_out_channels(module))
        idxs = [present.index(c) for c in chosen if c in present]
        if not idxs:
            continue
        if len(idxs) >= len(present):
            raise ValueError(f"{algorithm}: removing every channel of {name!r} leaves nothing")
        group = graph.get_pruning_group(module, graph.get_pruner_of_module(module).prune_out_channels, idxs)
        coupled = [dep.target.module for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler)]
        if any(id(m) in blocked for m in coupled):
            continue     # it would cut a layer that must stay whole (the classifier, an excluded layer)
        ledger.record(group)
        group.prune()
    _fix(model, adapters)
    return _result(model, algorithm, rate, before, targets, ledger, graph)


def _as_indices(chosen, n: int, name: str, algorithm: str) -> list[int]:
    t = torch.as_tensor(chosen)
    if t.dtype == torch.bool:          # a keep-mask: True = keep
        if t.numel() != n:
            raise ValueError(f"{algorithm}: the mask for {name!r} has {t.numel()} entries for {n} channels")
        return torch.nonzero(~t).flatten().tolist()
    idxs = sorted(set(int(i) for i in t.flatten().tolist()))
    if idxs and (idxs[0] < 0 or idxs[-1] >= n):
        raise ValueError(f"{algorithm}: channel indices for {name!r} must lie in 0..{n - 1}")
    return idxs


def replay(model: nn.Module, history: list, example_inputs: torch.Tensor) -> nn.Module:
    """Apply a recorded pruning history (PruneResult.history) to `model`, in place:
    the same architecture as the pruned model, ready for its state dict."""
    if history:
        model.eval()
        adapters = adapters_for(model)
        with torch.enable_grad(), tracing(adapters):     # the tracer needs autograd, even under no_grad
            graph = tp.DependencyGraph().build_dependency(model, example_inputs, customized_pruners=_pruners(adapters),
                                                          verbose=False)
            graph.load_pruning_history([list(h) for h in history])
        _fix(model, adapters)
    return model
