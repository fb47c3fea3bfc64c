"""Which layers to rebuild, in what order, and what they need: found by one probe
forward pass of both models (a couple of images) with hooks on every module.

A layer is rebuilt when it is a Conv2d or Linear called once per forward pass as
a module, at or after the first layer whose shape pruning changed (its inputs
then differ, even where its own channels do not). A BatchNorm that reads the
layer's output directly is folded into the solve; other modules whose parameters
pruning cut (a custom layer, attention projections used as raw weights) cannot
be rebuilt and are named.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch
import torch.nn as nn

from .channels import derive_kept_outputs
from .residual import Flow, Recorder, find_flows

# The widest layer rebuilt: 512 channels x 3 x 3, the widest conv of the reference torchvision models.
# The solve holds fan-in x fan-in normal equations (in float64, per cross-validation fold) and
# factorises them; a classifier that reads a flattened feature map (VGG's 25,088 inputs: 5 GB per
# copy; AlexNet's 9,216) would dominate memory and time, and with a few rows per image its
# solve is mostly regulariser anyway.
MAX_INPUTS = 4608

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


@dataclass
class Layer:
    name: str
    unpruned: nn.Module
    pruned: nn.Module
    keep: torch.Tensor                       # original indices of the pruned layer's outputs
    norm: Optional[str] = None               # a BatchNorm2d/1d that reads the output directly (folded)
    sum_index: Optional[int] = None          # the addition its output feeds alone (residual compensation)
    relu: bool = False                       # its output (or that sum) goes only into a ReLU

    @property
    def groups(self) -> int:
        return getattr(self.pruned, "groups", 1)


@dataclass
class Plan:
    layers: list[Layer]
    skipped: dict[str, str]                  # name -> why it is left as pruned
    unchanged: list[str]                     # before the first change: nothing to rebuild
    largest: int = 0                         # elements of the largest module output, per image, of either model


def _solvable(m: nn.Module) -> Optional[str]:
    """None if the module can be rebuilt, else why not."""
    if isinstance(m, nn.Conv2d):
        if type(m).forward is not nn.Conv2d.forward or type(m)._conv_forward is not nn.Conv2d._conv_forward:
            return f"custom {type(m).__name__} forward"
        if m.padding_mode != "zeros":
            return f"padding_mode {m.padding_mode!r}"
        return None
    if isinstance(m, nn.Linear):
        return None if type(m).forward is nn.Linear.forward else f"custom {type(m).__name__} forward"
    return f"{type(m).__name__} layers are not rebuilt"


def _mixes(pruned: nn.Module, unpruned: nn.Module) -> bool:
    """Whether one of the module's own parameters lost entries along two or more dimensions."""
    for p, u in zip(pruned.parameters(recurse=False), unpruned.parameters(recurse=False)):
        if p.dim() == u.dim() and sum(a != b for a, b in zip(p.shape, u.shape)) >= 2:
            return True
    return False


def _shapes(m: nn.Module) -> list:
    return [tuple(p.shape) for p in m.parameters(recurse=False)] + \
           [tuple(b.shape) for b in m.buffers(recurse=False)]


@torch.no_grad()
def _probe(model: nn.Module, x: torch.Tensor) -> tuple[list[str], dict[str, int], dict[str, str], dict[str, Flow],
                                                      int]:
    """(conv/linear names in call order, calls per module name, layer -> BatchNorm reading
    its output, layer -> the addition its (BatchNorm's) output alone feeds). The hooks
    only compare objects: any tensor operation in them would count as a use."""
    names = {m: n for n, m in model.named_modules()}
    order, calls, outputs, follows, every = [], {}, {}, {}, {}
    handles = []

    def pre(m, args):
        n = names[m]
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and args:
            for layer, out in outputs.items():
                if out is args[0]:
                    follows.setdefault(layer, []).append(n)

    def post(m, args, out):
        n = names[m]
        calls[n] = calls.get(n, 0) + 1
        every[n] = out
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if calls[n] == 1:
                order.append(n)
            outputs[n] = out

    for m in model.modules():
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    recorder = Recorder()
    try:
        with recorder:
            model(x)
    finally:
        for h in handles:
            h.remove()
    # a BatchNorm is folded only when it is the one reader seen and reads that output once
    folded = {k: v[0] for k, v in follows.items() if len(v) == 1 and calls.get(v[0]) == 1}
    ends = {n: every[folded.get(n, n)] for n in order if calls.get(n) == 1}
    largest = max((o.numel() // max(len(x), 1) for o in every.values() if isinstance(o, torch.Tensor)), default=0)
    return order, calls, folded, find_flows(ends, recorder), largest


def plan(unpruned: nn.Module, pruned: nn.Module, example: torch.Tensor,
         kept_outputs: Optional[Mapping[str, Sequence[int]]] = None,
         only: Optional[Sequence[str]] = None, max_inputs: int = MAX_INPUTS) -> Plan:
    """The layers of `pruned` to rebuild against `unpruned`, in forward order; a layer with
    more than `max_inputs` inputs per output is left as pruned (see MAX_INPUTS)."""
    u_mods, p_mods = dict(unpruned.named_modules()), dict(pruned.named_modules())
    order, calls, follows, flows, largest = _probe(pruned, example)
    u_order, _, u_follows, u_flows, u_largest = _probe(unpruned, example)
    kept_outputs = dict(kept_outputs or {})
    changed = {n for n, m in p_mods.items() if n in u_mods and _shapes(m) != _shapes(u_mods[n])}
    first = next((i for i, n in enumerate(order) if n in changed), len(order))
    wanted = set(only) if only is not None else None
    layers, skipped, unchanged = [], {}, []
    for i, name in enumerate(order):
        if wanted is not None:
            if name not in wanted:
                continue
        elif i < first:
            unchanged.append(name)
            continue
        p, u = p_mods[name], u_mods.get(name)
        why = _solvable(p)
        if why is None and p.weight[0].numel() > max_inputs:
            n = p.weight[0].numel()
            why = (f"{n} inputs per output, over the solver's bound of {max_inputs}: its normal equations would "
                   f"take {n * n * 8 / 1e6:,.0f} MB per copy and a cubic-time solve")
        if why is None and (u is None or type(u) is not type(p)):
            why = "no layer of that name and type in the unpruned model"
        if why is None and calls.get(name, 0) != 1:
            why = f"called {calls.get(name)} times per forward pass (shared weights)"
        if why is None and name not in u_order:
            why = "not called in the unpruned model's forward pass"
        keep = None
        if why is None:
            keep = _kept(name, u, p, kept_outputs)
            if keep is None:
                why = "kept output channels unknown (pass kept_outputs; its weights no longer match the unpruned ones)"
        if why is not None:
            skipped[name] = why
            continue
        norm = follows.get(name)
        if norm is not None and u_follows.get(name) != norm:
            norm = None
        flow = flows.get(name, Flow())
        if flow != u_flows.get(name, Flow()):
            flow = Flow()
        layers.append(Layer(name, u, p, keep, norm, flow.sum_index, flow.relu))
    # other modules holding a channel-mixing parameter that pruning cut on two sides (attention
    # projections, a plugin's layer): left as they are. Parameters cut along one dimension only
    # (class tokens, position embeddings, scales) are per-channel and need no rebuilding.
    for name, m in p_mods.items():
        if name in changed and name not in skipped and not isinstance(m, (nn.Conv2d, nn.Linear) + _NORMS):
            if _mixes(m, u_mods[name]):
                skipped[name or type(m).__name__] = f"{type(m).__name__} is not rebuilt (its weights stay as pruned)"
    for name, m in p_mods.items():      # conv/linear never called as modules (e.g. attention projections)
        if isinstance(m, (nn.Conv2d, nn.Linear)) and name not in calls and (wanted is None or name in wanted):
            if name in changed:
                skipped.setdefault(name, "not called as a module (its weights are used inside its parent)")
    return Plan(layers, skipped, unchanged, max(largest, u_largest))


def _kept(name: str, u: nn.Module, p: nn.Module, kept_outputs: Mapping) -> Optional[torch.Tensor]:
    n_u = u.weight.shape[0]
    if name in kept_outputs:
        keep = torch.as_tensor(list(kept_outputs[name]), dtype=torch.long)
        if keep.numel() != p.weight.shape[0] or (keep.numel() and (keep.min() < 0 or keep.max() >= n_u)):
            return None
        return keep
    if p.weight.shape[0] == n_u:
        return torch.arange(n_u)
    return derive_kept_outputs(u, p)
