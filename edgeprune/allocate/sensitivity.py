"""The sensitivity map: for each channel group, the loss on calibration images when
that group alone keeps each of several widths, after the cheap recovery.

    smap = measure_sensitivity(model, prune_group, structure, images, labels, widths=[0.2, 0.5, 0.8])
    smap.group_loss("layer1.0.conv1", kept=6)      # interpolated, never lower at a smaller width
    smap.predicted({"layer1.0.conv1": 6, ...})     # the loss of a whole allocation: the sum of its parts

The cheap recovery is BatchNorm on the calibration images' own statistics (what
recalibrating them gives, in one pass instead of two), or, where `rebuild` is
given, the cut group's consumers re-solved by least squares (edgeprune.recover)
and the loss taken with the rebuilt statistics.

Its cost is probes x (prune + one pass over the images, plus the rebuild); it is
bounded by `max_seconds`: the first probe is timed, and while the estimate exceeds
the bound the rebuild is dropped, then every other width, then half the images.
What was given up is recorded (`reduced`).
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import EdgepruneError
from ..prune.groups import ChannelStructure

MAP_VERSION = 1
MIN_IMAGES = 64


@dataclass
class SensitivityMap:
    groups: dict[str, int]                    # group -> its channels
    widths: list[float]                       # the kept fractions asked for
    kept: dict[str, list[int]]                # group -> channels kept at each probe (ascending)
    loss: dict[str, list[float]]              # group -> loss at each probe
    base_loss: float                          # the unpruned model's loss on the same images, recovered alike
    recovery: str                             # "batchnorm" | "batchnorm+rebuild"
    images: int
    seconds: float                            # what measuring it took
    calls: int                                # probes: a pruned copy evaluated on the images
    reduced: str = ""                         # what the cost bound gave up ("" nothing)
    version: int = MAP_VERSION
    info: dict = field(default_factory=dict)  # model, algorithm, ... (what it was measured for)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "SensitivityMap":
        if d.get("version") != MAP_VERSION:
            raise EdgepruneError(f"a sensitivity map of version {d.get('version')} cannot be read (this edgeprune "
                                 f"writes version {MAP_VERSION}); delete it to measure it again")
        return cls(**d)

    @property
    def min_fraction(self) -> float:
        return min(self.widths)

    def curve(self, group: str) -> list[tuple[float, float]]:
        """(kept fraction, loss) from the narrowest probe to 1.0, the loss made never
        lower at a smaller width (a probe's noise cannot make a cut look free)."""
        n = self.groups[group]
        pts = sorted(zip((k / n for k in self.kept[group]), self.loss[group])) + [(1.0, self.base_loss)]
        out, worst = [], self.base_loss
        for f, loss in reversed(pts):
            worst = max(worst, loss)
            out.append((f, worst))
        return out[::-1]

    def group_loss(self, group: str, kept: float) -> float:
        """The loss with `group` alone at `kept` channels (linear between probes; below
        the narrowest, the narrowest two probes' slope continued)."""
        if group not in self.groups:
            return self.base_loss
        pts = self.curve(group)
        f = kept / self.groups[group]
        if f >= 1.0:
            return self.base_loss
        for (f0, l0), (f1, l1) in zip(pts, pts[1:]):
            if f0 <= f <= f1:
                return l0 + (l1 - l0) * (f - f0) / (f1 - f0) if f1 > f0 else l0
        (f0, l0), (f1, l1) = pts[0], pts[1]
        return l0 + (l0 - l1) * (f0 - f) / (f1 - f0) if f1 > f0 else l0

    def predicted(self, widths: Mapping[str, int]) -> float:
        """The loss of a whole allocation, taken as the unpruned loss plus each group's own increase."""
        return self.base_loss + sum(self.group_loss(g, k) - self.base_loss for g, k in widths.items())


def _bn_batch_statistics(model: nn.Module) -> None:
    """Eval mode, except BatchNorm, which normalises by each batch's own statistics."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()


@torch.no_grad()
def calibration_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                     batch_norm: bool) -> float:
    """Mean cross-entropy on the images; `batch_norm`: with each batch's own BatchNorm statistics."""
    _bn_batch_statistics(model) if batch_norm else model.eval()
    total = 0.0
    for i in range(0, len(images), batch_size):
        out = model(images[i:i + batch_size])
        total += float(F.cross_entropy(out.double(), labels[i:i + batch_size], reduction="sum"))
    model.eval()
    return total / len(images)


def probe_widths(n: int, widths: Sequence[float]) -> list[int]:
    """The distinct channel counts a group of `n` keeps at the kept fractions `widths`."""
    return sorted({min(n - 1, max(1, round(w * n))) for w in widths if n > 1})


# prune_group(model, {layer: rate}) -> PruneResult, pruning `model` in place
PruneGroup = Callable[[nn.Module, dict], object]
# rebuild(unpruned, pruned, result) -> None, rebuilding `pruned` in place
Rebuild = Callable[[nn.Module, nn.Module, object], None]


def measure_sensitivity(model: nn.Module, prune_group: PruneGroup, structure: ChannelStructure,
                        images: torch.Tensor, labels: torch.Tensor, widths: Sequence[float],
                        rebuild: Optional[Rebuild] = None, batch_size: int = 128,
                        max_seconds: Optional[float] = None, info: Optional[dict] = None,
                        to_device: Callable[[nn.Module], nn.Module] = lambda m: m) -> SensitivityMap:
    """Measure the map of `model` (not changed): each group of `structure` cut alone to
    each width by `prune_group` (on a copy where `model` is), moved by `to_device` to
    where the images are, recovered, scored on (images, labels)."""
    start = time.perf_counter()
    unpruned = to_device(copy.deepcopy(model)).eval()
    widths = sorted(set(float(w) for w in widths))
    if not widths or not all(0 < w < 1 for w in widths):
        raise EdgepruneError(f"allocate.widths: give kept fractions in (0, 1), got {widths}")
    groups = [g for g in structure.groups if g.channels > 1]
    calls, reduced = 0, []

    def probe(group, keep: int) -> float:
        nonlocal calls
        pruned = copy.deepcopy(model)
        ratio = 1.0 - (keep + 0.5) / group.channels
        result = prune_group(pruned, {layer: ratio for layer in group.layers})
        pruned = to_device(result.model)
        calls += 1
        if rebuild is not None:
            rebuild(unpruned, pruned, result)
            return calibration_loss(pruned, images, labels, batch_size, batch_norm=False)
        return calibration_loss(pruned, images, labels, batch_size, batch_norm=True)

    def plan() -> int:
        return sum(len(probe_widths(g.channels, widths)) for g in groups)

    first: Optional[tuple[str, int, float]] = None     # the timed probe, reused where the map needs it
    while max_seconds is not None and groups:
        g0 = max(groups, key=lambda g: g.channels)
        choices = probe_widths(g0.channels, widths)
        t0 = time.perf_counter()
        first = (g0.name, choices[len(choices) // 2], probe(g0, choices[len(choices) // 2]))
        if (time.perf_counter() - t0) * plan() <= max_seconds:
            break
        if rebuild is not None:
            rebuild = None
            reduced.append("rebuild dropped")
        elif len(widths) > 2:
            widths = widths[::2] if len(widths) % 2 else widths[::2] + [widths[-1]]
            reduced.append(f"widths thinned to {widths}")
        elif len(images) >= 2 * MIN_IMAGES:
            images, labels = images[:len(images) // 2], labels[:len(labels) // 2]
            reduced.append(f"images halved to {len(images)}")
        else:
            break
    # the unpruned model's loss under the same recovery as the probes (BatchNorm on the images' own
    # statistics, or as they are after a rebuild), so that what a probe gains from recovery alone
    # does not read as a cut that costs nothing
    reference = unpruned if rebuild is not None else copy.deepcopy(unpruned)
    base_loss = calibration_loss(reference, images, labels, batch_size, batch_norm=rebuild is None)
    kept, loss = {}, {}
    for g in groups:
        kept[g.name] = probe_widths(g.channels, widths)
        loss[g.name] = [first[2] if first and (g.name, k) == first[:2] else probe(g, k) for k in kept[g.name]]
    return SensitivityMap(
        groups={g.name: g.channels for g in groups}, widths=widths, kept=kept, loss=loss, base_loss=base_loss,
        recovery="batchnorm+rebuild" if rebuild is not None else "batchnorm", images=len(images),
        seconds=time.perf_counter() - start, calls=calls, reduced="; ".join(reduced), info=dict(info or {}))
