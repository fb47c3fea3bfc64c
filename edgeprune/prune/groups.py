"""A model's pruning decisions, as Torch-Pruning's dependency graph couples them:
each `ChannelGroup` is a set of channels that must lose the same members in every
layer that holds them (a residual stream, a conv and its BatchNorm and consumers, a
depthwise conv and its producer). How many of each group's channels stay is what a
layer-wise allocation (edgeprune.allocate) chooses.

`channel_structure` also says, for every conv / linear layer and every other module
with parameters, which group governs its output and its input channels, with the
numbers from which its MACs and parameters follow at any choice of widths
(edgeprune.allocate.cost). `group_scores` gives each group's per-channel importance
under a criterion, normalised as pruning normalises it (the `global` allocation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import torch
import torch.nn as nn
import torch_pruning as tp

from ..models.complexity import count_macs
from .architectures import tracing
from .criteria import Criterion
from .importance import FilterImportance, following_batchnorms
from .structured import _graph_args, _pruners, accumulate_gradients


@dataclass(frozen=True)
class ChannelGroup:
    name: str                    # its first producer's name: what reports and maps call it
    channels: int
    layers: tuple[str, ...]      # the targeted conv / linear layers whose outputs it cuts


@dataclass(frozen=True)
class LayerShape:
    """A conv or linear layer: MACs = positions * out * (in / groups) * kernel, at batch 1."""
    name: str
    kind: str                    # conv | pointwise | depthwise | linear
    positions: int               # output positions (H x W) per image
    kernel: int                  # kernel elements (k x k)
    out_channels: int
    in_channels: int
    groups: int
    bias: bool
    out_group: Optional[str]     # the group that governs its outputs (None: they stay)
    in_groups: tuple[tuple[str, int], ...]    # (group, channels of the input it governs)
    resolution: int              # output side (for latency classes)

    @property
    def depthwise(self) -> bool:
        return self.kind == "depthwise"

    @property
    def macs(self) -> int:
        return self.positions * self.out_channels * (self.in_channels // self.groups) * self.kernel


@dataclass(frozen=True)
class ChannelStructure:
    groups: list[ChannelGroup]
    layers: list[LayerShape]
    # other modules with parameters whose size follows their channels (BatchNorm, LayerNorm, PReLU):
    # name -> (params, channels, ((group, channels it governs), ...))
    channelwise: dict[str, tuple[int, int, tuple[tuple[str, int], ...]]] = field(default_factory=dict)
    fixed_params: int = 0        # parameters no group changes
    fixed_macs: int = 0          # MACs the counter sees outside conv / linear layers (matmuls)


def _graph(model: nn.Module, example_inputs: torch.Tensor, layers, include, exclude):
    targets, ignored, roots, adapters = _graph_args(model, layers, include, exclude)
    model.eval()
    with torch.enable_grad(), tracing(adapters):
        graph = tp.DependencyGraph().build_dependency(model, example_inputs, customized_pruners=_pruners(adapters),
                                                      verbose=False)
    return graph, targets, ignored, roots


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return "linear"
    if m.groups > 1 and m.groups == m.in_channels:
        return "depthwise"
    k = 1
    for s in m.kernel_size:
        k *= s
    return "pointwise" if k == 1 else "conv"


def _positions(model: nn.Module, example_inputs: torch.Tensor) -> dict[str, tuple[int, int]]:
    """Output positions per image and output side of every conv / linear layer."""
    found, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            def hook(mod, inputs, out, name=name):
                features = mod.out_channels if isinstance(mod, nn.Conv2d) else mod.out_features
                side = out.shape[-1] if isinstance(mod, nn.Conv2d) else 1
                found[name] = (out[:1].numel() // features, int(side))
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(example_inputs[:1])
    finally:
        for h in hooks:
            h.remove()
    return found


def group_name(group, graph, names: dict, targeted: set, order: dict) -> Optional[str]:
    """A group's name: its first targeted producer in the model's order (Torch-Pruning's
    root is arbitrary: on MobileNetV2 it differs for 22 of 25 groups). None: no targeted
    producer."""
    return min((names[d.target.module] for d, _ in group if names.get(d.target.module) in targeted
                and graph.is_out_channel_pruning_fn(d.handler)), key=order.get, default=None)


def channel_structure(model: nn.Module, example_inputs: torch.Tensor, layers=("conv2d",), include=(),
                      exclude=()) -> ChannelStructure:
    """The groups a pruning of the targeted layers can cut, and how every layer's
    size follows them (see the module docstring)."""
    graph, targets, ignored, roots = _graph(model, example_inputs, layers, include, exclude)
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    targeted = set(targets)
    groups: list[ChannelGroup] = []
    out_of: dict[str, str] = {}
    in_of: dict[str, list[tuple[str, int]]] = {}
    other: dict[str, list[tuple[str, int]]] = {}
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=roots):
        root = group_name(group, graph, names, targeted, order)
        if root is None:
            continue
        producers = []
        for dep, idxs in group:
            module, name = dep.target.module, names.get(dep.target.module)
            if name is None:
                continue
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                if graph.is_out_channel_pruning_fn(dep.handler):
                    out_of[name] = root
                    if name in targeted:
                        producers.append(name)
                    if _kind(module) == "depthwise":
                        in_of[name] = [(root, len(idxs))]
                elif graph.is_in_channel_pruning_fn(dep.handler) and _kind(module) != "depthwise":
                    in_of.setdefault(name, []).append((root, len(idxs)))
            elif any(p.requires_grad for p in module.parameters(recurse=False)):
                other.setdefault(name, []).append((root, len(idxs)))
        groups.append(ChannelGroup(root, len(group[0].idxs), tuple(sorted(set(producers), key=order.get))))
    groups.sort(key=lambda g: order[g.name])
    kept = {g.name for g in groups}
    positions = _positions(model, example_inputs)
    shapes = []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or name not in positions:
            continue
        conv = isinstance(m, nn.Conv2d)
        kernel = 1
        for s in (m.kernel_size if conv else ()):
            kernel *= s
        pos, side = positions[name]
        shapes.append(LayerShape(
            name, _kind(m), pos, kernel, m.out_channels if conv else m.out_features,
            m.in_channels if conv else m.in_features, m.groups if conv else 1, m.bias is not None,
            out_of.get(name) if out_of.get(name) in kept else None,
            tuple((g, c) for g, c in in_of.get(name, []) if g in kept), side))
    modules = dict(model.named_modules())
    channelwise = {}
    for n, governed in other.items():
        params = list(modules[n].parameters(recurse=False))
        governed = tuple((g, c) for g, c in dict(governed).items() if g in kept)
        if governed and params and params[0].dim() >= 1:
            channelwise[n] = (sum(p.numel() for p in params), int(params[0].shape[0]), governed)
    counted = {s.name for s in shapes} | set(channelwise)
    fixed = sum(p.numel() for n, m in model.named_modules() if n not in counted
                for p in m.parameters(recurse=False))
    macs = count_macs(model, example_inputs.shape[-1], example_inputs.shape[1])
    return ChannelStructure(groups, shapes, channelwise, fixed, macs - sum(s.macs for s in shapes))


def group_scores(model: nn.Module, criterion: Criterion, example_inputs: torch.Tensor, layers=("conv2d",),
                 include=(), exclude=(), seed: int = 0, calibration: Optional[Iterable] = None) -> dict[str, torch.Tensor]:
    """Each group's per-channel importance under `criterion`, every producer's scores
    divided by their mean (so layers of different scale weigh the same), as pruning
    ranks them: one ranking across groups compares like with like."""
    grad_sq = {}
    if criterion.needs_gradients:
        if calibration is None:
            raise ValueError(f"the {criterion.name} criterion needs calibration batches")
        grad_sq = accumulate_gradients(model, calibration)
    graph, targets, ignored, roots = _graph(model, example_inputs, layers, include, exclude)
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    importance = FilterImportance(criterion, seed, names=names, grad_sq=grad_sq)
    importance.bns = following_batchnorms(graph)
    out = {}
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=roots):
        name = group_name(group, graph, names, set(targets), order)     # as channel_structure names it
        scores = importance(group) if name is not None else None
        if scores is not None:
            out[name] = scores.detach().float().cpu()
    model.zero_grad(set_to_none=True)
    return out
