"""What follows a layer's output, seen through a TorchFunctionMode (residual additions
and activations are functional calls, invisible to module hooks):

- Residual compensation: a layer whose (BatchNorm'd) output goes only into an
  addition with a skip connection is solved to make the SUM match the unpruned
  model's, not its own output. The skip in the pruned model carries the errors of
  every block before; the layer then cancels them on the channels it writes, so
  they do not pile up along the residual stream. In the pruned pass the layer's
  solve waits for that addition (the k-th of the forward pass), where the skip's
  value is known; the sum is then recomputed with the solved layer.
- ReLU awareness: where that output (or the sum) goes only into a ReLU, a row whose
  target is negative is met by any value at or below zero.

The probe pass records every call's tensor arguments. Tensors are told apart by
object and by version: an in-place operation (`out += identity`, `relu_`) makes a
new value in the same object.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__,
         torch.Tensor.__radd__}
_no_torch_function = getattr(torch._C, "DisableTorchFunction", contextlib.nullcontext)
_RELUS = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu_, F.relu6}


def _tensors(args, kwargs) -> list:
    out = []
    for a in list(args) + list((kwargs or {}).values()):
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out += [t for t in a if isinstance(t, torch.Tensor)]
    return out


@dataclass
class Call:
    func: Callable
    inputs: list            # (id, version) of each tensor argument
    output: Optional[tuple]
    args: tuple


class Recorder(TorchFunctionMode):
    """Probe pass: every function call, with its tensors' (object, version) keys."""

    def __init__(self):
        super().__init__()
        self.calls: list[Call] = []
        self.version: dict[int, int] = {}
        self.alive: list = []                     # keeps every tensor alive, so ids stay unique

    def key(self, t: torch.Tensor) -> tuple:
        return id(t), self.version.get(id(t), 0)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        tensors = _tensors(args, kwargs)
        inputs = [self.key(t) for t in tensors]
        self.alive += tensors
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            if any(out is t for t in tensors):          # in place: a new value in the same object
                self.version[id(out)] = self.version.get(id(out), 0) + 1
            self.alive.append(out)
        self.calls.append(Call(func, inputs, self.key(out) if isinstance(out, torch.Tensor) else None, args))
        return out

    def readers(self, key: tuple) -> list[int]:
        if not hasattr(self, "_readers"):
            self._readers: dict[tuple, list[int]] = {}
            for i, c in enumerate(self.calls):
                for k in dict.fromkeys(c.inputs):
                    self._readers.setdefault(k, []).append(i)
        return self._readers.get(key, [])

    def add_index(self, i: int) -> int:
        """How many additions came before call i."""
        return sum(1 for c in self.calls[:i] if c.func in _ADDS)


@dataclass
class Flow:
    sum_index: Optional[int] = None       # the addition (k-th of a forward pass) that alone reads the output
    relu: bool = False                    # the output (or that sum) goes only into a ReLU


def _relu_only(recorder: Recorder, key: tuple) -> bool:
    readers = recorder.readers(key)
    if len(readers) != 1:
        return False
    call = recorder.calls[readers[0]]
    return call.func in _RELUS


def find_flows(outputs: dict[str, torch.Tensor], recorder: Recorder) -> dict[str, Flow]:
    """{layer: Flow} for layers whose outputs (`outputs`: the folded BatchNorm's output,
    else the layer's) feed a residual addition and/or a ReLU alone. A sum of two such
    outputs goes to the layer listed first (the one computed first)."""
    flows: dict[str, Flow] = {}
    taken: set[int] = set()
    for name, y in outputs.items():
        key = (id(y), 0)
        readers = recorder.readers(key)
        if len(readers) != 1:
            continue
        call = recorder.calls[readers[0]]
        if call.func in _RELUS:
            flows[name] = Flow(relu=True)
            continue
        if call.func not in _ADDS or len(call.args) < 2:
            continue
        a, b = call.args[0], call.args[1]
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            continue
        k = recorder.add_index(readers[0])
        if k in taken:
            continue
        taken.add(k)
        flows[name] = Flow(sum_index=k, relu=call.output is not None and _relu_only(recorder, call.output))
    return flows


class SumHook(TorchFunctionMode):
    """Real passes: calls `on_sum(layer, result, first, second)` at each addition listed
    in `sums` (k -> layer name); its return value replaces the sum. `count` must be
    reset before each forward pass."""

    def __init__(self, sums: dict[int, str], on_sum: Callable):
        super().__init__()
        self.sums, self.on_sum, self.count, self.paused = sums, on_sum, 0, 0

    @contextlib.contextmanager
    def pause(self):
        """Operations of edgeprune's own hooks are not the model's: they are not counted
        (and, where torch allows, not even seen: that is faster)."""
        self.paused += 1
        try:
            with _no_torch_function():
                yield
        finally:
            self.paused -= 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _ADDS and not self.paused:
            k, self.count = self.count, self.count + 1
            if k in self.sums:
                other = args[1] if len(args) > 1 else (kwargs or {}).get("other")
                replaced = self.on_sum(self.sums[k], out, args[0], other)
                if replaced is not None:
                    out = replaced
        return out


def recompute(layer: nn.Module, norm: Optional[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """The layer's (and its BatchNorm's) output on `x`, without running any hook."""
    if isinstance(layer, nn.Conv2d):
        y = layer._conv_forward(x, layer.weight, layer.bias)
    else:
        y = F.linear(x, layer.weight, layer.bias)
    if norm is not None:
        y = F.batch_norm(y, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
    return y
