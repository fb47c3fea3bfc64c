"""What a choice of widths costs, counted exactly from the layer shapes: MACs and
parameters (as PyTorch's counters count them on the pruned model), and the
features the latency model is fitted on (MACs and output elements per class of
layer, with channel counts rounded up to the runtime's block). Widths are
{group name: channels kept}; a group left out keeps all its channels.

Every cost is a sum over layers, so the change that one group's width makes is
counted on the layers that group touches only (`delta`): the allocation loop
asks that question thousands of times.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from ..prune.groups import ChannelStructure, LayerShape
from .rounding import padded as _padded

OUTPUTS = ":outputs"      # a class's second latency feature: the output elements it writes


def latency_class(layer: LayerShape) -> str:
    """The class of layer one latency coefficient is fitted for: its kind at its output side."""
    return "linear" if layer.kind == "linear" else f"{layer.kind}@{layer.resolution}"


class CostModel:
    """A cost of widths: `total(widths)`, and `delta(widths, group, kept)` = the change
    when `group` alone goes to `kept`. Subclasses say what a layer costs."""
    unit = ""

    def __init__(self, structure: ChannelStructure):
        self.structure = structure
        self.size = {g.name: g.channels for g in structure.groups}
        self.touching: dict[str, list[LayerShape]] = {g: [] for g in self.size}
        for layer in structure.layers:
            for g in {layer.out_group, *(g for g, _ in layer.in_groups)} - {None}:
                self.touching[g].append(layer)
        self.norms: dict[str, list[tuple]] = {g: [] for g in self.size}
        for entry in structure.channelwise.values():
            for g, _ in entry[2]:
                self.norms[g].append(entry)

    # -- a layer's channels under widths --------------------------------------------------------------------------
    def channels(self, layer: LayerShape, widths: Mapping[str, int], block: int = 1) -> tuple[float, float]:
        """(outputs, inputs per group of the conv) the layer has under `widths`, each
        governed count rounded up to `block`."""
        out = layer.out_channels
        if layer.out_group is not None:
            out = _padded(widths.get(layer.out_group, out), block)
        if layer.depthwise:
            return out, 1.0
        inputs = float(layer.in_channels)
        for g, c in layer.in_groups:
            n = self.size[g]
            inputs += _padded(widths.get(g, n) * c / n, block) - c
        return out, inputs / layer.groups

    def layer_cost(self, layer: LayerShape, widths: Mapping[str, int]) -> float:
        raise NotImplementedError

    def fixed(self) -> float:
        return 0.0

    def norm_cost(self, entry: tuple, widths: Mapping[str, int]) -> float:
        return 0.0

    def norm_channels(self, entry: tuple, widths: Mapping[str, int]) -> float:
        _, channels, governed = entry
        return channels + sum(widths.get(g, self.size[g]) * c / self.size[g] - c for g, c in governed)

    # -- totals and changes -----------------------------------------------------------------------------------------
    def total(self, widths: Mapping[str, int]) -> float:
        return (self.fixed() + sum(self.layer_cost(l, widths) for l in self.structure.layers)
                + sum(self.norm_cost(e, widths) for e in self.structure.channelwise.values()))

    def delta(self, widths: Mapping[str, int], group: str, kept: int) -> float:
        changed = {**widths, group: kept}
        return (sum(self.layer_cost(l, changed) - self.layer_cost(l, widths) for l in self.touching[group])
                + sum(self.norm_cost(e, changed) - self.norm_cost(e, widths) for e in self.norms[group]))


class MacsCost(CostModel):
    unit = "MACs"

    def layer_cost(self, layer, widths):
        out, per_group_in = self.channels(layer, widths)
        return layer.positions * out * per_group_in * layer.kernel

    def fixed(self):
        return float(self.structure.fixed_macs)


class ParamsCost(CostModel):
    unit = "parameters"

    def layer_cost(self, layer, widths):
        out, per_group_in = self.channels(layer, widths)
        return out * per_group_in * layer.kernel + (out if layer.bias else 0.0)

    def fixed(self):
        return float(self.structure.fixed_params)

    def norm_cost(self, entry, widths):
        return entry[0] * self.norm_channels(entry, widths) / entry[1]


class LatencyFeatures(CostModel):
    """Per latency class, MACs and output elements, channel counts rounded up to
    `block` (what the runtime computes on); `total` of a LatencyCost is a linear model
    of these. Output elements (positions x output channels) carry what does not scale
    with MACs: writing and reading activations, the fused BatchNorm and ReLU, a kernel's
    cost per output. Narrowing a layer cuts its MACs quadratically but these linearly,
    so a model of MACs alone predicts narrow networks too fast."""

    def __init__(self, structure: ChannelStructure, block: int = 1):
        super().__init__(structure)
        self.block = block
        kinds = sorted({latency_class(l) for l in structure.layers})
        self.kinds = kinds
        self.classes = kinds + [k + OUTPUTS for k in kinds]

    def features(self, widths: Mapping[str, int]) -> dict[str, float]:
        out = dict.fromkeys(self.classes, 0.0)
        for layer in self.structure.layers:
            c_out, c_in = self.channels(layer, widths, self.block)
            out[latency_class(layer)] += layer.positions * c_out * c_in * layer.kernel
            out[latency_class(layer) + OUTPUTS] += layer.positions * c_out
        return out


class LatencyCost(LatencyFeatures):
    """Predicted milliseconds: intercept + sum over classes of coefficient x padded MACs
    (+ coefficient x output elements; a model fitted before those were measured has none)."""
    unit = "ms"

    def __init__(self, structure: ChannelStructure, block: int, intercept: float, coefficients: Mapping[str, float]):
        super().__init__(structure, block)
        self.intercept, self.coefficients = intercept, dict(coefficients)

    def layer_cost(self, layer, widths):
        c_out, c_in = self.channels(layer, widths, self.block)
        k = latency_class(layer)
        per_output = self.coefficients.get(k, 0.0) * c_in * layer.kernel + self.coefficients.get(k + OUTPUTS, 0.0)
        return per_output * layer.positions * c_out

    def fixed(self):
        return self.intercept


def uniform_widths(structure: ChannelStructure, rate: float, round_to: Optional[int] = None,
                   upper: Optional[Mapping[str, int]] = None) -> dict[str, int]:
    """The widths a uniform per-layer `rate` gives (Torch-Pruning's rule: int(n x (1 - rate))
    kept, rounded down to `round_to`)."""
    out = {}
    for g in structure.groups:
        keep = int(g.channels * (1 - rate))
        if round_to:
            keep -= keep % round_to
        out[g.name] = max(1, min(keep, (upper or {}).get(g.name, g.channels)))
    return out


def full_widths(structure: ChannelStructure, names: Optional[Sequence[str]] = None) -> dict[str, int]:
    return {g.name: g.channels for g in structure.groups if names is None or g.name in names}
