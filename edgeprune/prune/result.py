"""What a pruning step reports."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch.nn as nn


@dataclass
class PruneResult:
    model: nn.Module
    algorithm: str
    structured: bool
    layer_rate: float                        # per-layer rate applied (searched for global targets)
    layer_channels: dict[str, tuple[int, int]]  # conv/linear outputs: name -> (before, after)
    targets: list[str]                       # names of the targeted layers
    # original indices of the input channels each consumer no longer reads
    removed_inputs: dict[str, list[int]] = field(default_factory=dict)
    # original indices of the output / input channels each cut conv or linear still has (layers
    # absent here keep all theirs): what recovery (edgeprune.recover) needs to pair pruned and
    # unpruned channels. Relative to the model that was pruned (a cascade link: its parent).
    kept_outputs: dict[str, list[int]] = field(default_factory=dict)
    kept_inputs: dict[str, list[int]] = field(default_factory=dict)
    # Torch-Pruning's pruning history: [module name, out-channels?, indices] per step (replay rebuilds the model)
    history: list = field(default_factory=list)
    sparsity: Optional[float] = None         # unstructured only: zero fraction of targeted weights
    seconds: float = 0.0

    @property
    def channel_ratio(self) -> float:
        """Fraction of the targeted layers' output channels removed."""
        before = sum(self.layer_channels[n][0] for n in self.targets)
        after = sum(self.layer_channels[n][1] for n in self.targets)
        return 1.0 - after / before if before else 0.0

    @property
    def removed_nothing(self) -> bool:
        return self.structured and all(b == a for b, a in self.layer_channels.values())
