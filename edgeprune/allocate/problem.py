"""What an allocator is asked: the groups, the widths each may take, what a choice
costs, the budget, and what predicts the loss."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from ..prune.groups import ChannelGroup
from .cost import CostModel
from .sensitivity import SensitivityMap

MAX_LEVELS = 32       # widths a group may take: enough to meet a budget within 1 %, few enough to search fast


def width_choices(channels: int, upper: int, multiple: int, min_fraction: float) -> list[int]:
    """The channel counts a group of `channels` may keep (ascending, the largest `upper`):
    multiples of `multiple` (the runtime's fast multiple; coarser for wide groups, at most
    MAX_LEVELS of them), none below `min_fraction` of the group."""
    step = multiple * max(1, math.ceil(channels / (MAX_LEVELS * multiple)))
    lowest = max(1, math.ceil(min_fraction * channels - 1e-9))
    out = [k for k in range(step, upper, step) if k >= lowest]
    return out + [upper]


@dataclass
class Problem:
    groups: list[ChannelGroup]
    choices: dict[str, list[int]]             # group -> the widths it may keep, ascending (the last: where it starts)
    cost: CostModel                           # of widths, in the budget's unit
    budget: float
    tolerance: float                          # the budget is met within this (same unit)
    sensitivity: Optional[SensitivityMap] = None        # the measured loss of each group's widths
    scores: Optional[dict[str, torch.Tensor]] = None    # per-channel importance, normalised per group
    seed: int = 0

    @property
    def start(self) -> dict[str, int]:
        return {g: c[-1] for g, c in self.choices.items()}

    @property
    def narrowest(self) -> dict[str, int]:
        return {g: c[0] for g, c in self.choices.items()}

    def loss(self, group: str, kept: int) -> float:
        """The predicted loss of one group's width (the map's; 0 without one)."""
        return self.sensitivity.group_loss(group, kept) if self.sensitivity is not None else 0.0

    def within(self, widths: Mapping[str, int]) -> bool:
        return abs(self.cost.total(widths) - self.budget) <= self.tolerance
