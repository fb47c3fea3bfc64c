"""An ImageFolder split read from disk batch by batch (`dataset.in_memory: false`),
for trees too large to decode into memory; served by the textbook StreamingLoader."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets

from .dataset import fraction_indices


@dataclass
class FolderDataset:
    root: Path
    classes: list[str]
    mean: tuple
    std: tuple
    size: int                           # images are resized to size x size
    indices: list[int] | None = None    # a subset (train_fraction) of the files

    def __post_init__(self):
        self.images = _NoTensor()        # keeps `data.images.device` working for loaders

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.files())

    def files(self):
        if not hasattr(self, "_folder"):
            self._folder = datasets.ImageFolder(str(self.root))
        return self._folder.samples

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return self.size

    def to(self, device) -> "FolderDataset":
        return self                      # streamed batches are moved by the training loop

    def subset(self, fraction: float, seed: int = 0) -> "FolderDataset":
        if fraction >= 1.0:
            return self
        return self._take(fraction_indices(len(self), fraction, seed)[0])

    def rest(self, fraction: float, seed: int = 0) -> "FolderDataset | None":
        """The files `subset(fraction, seed)` leaves out (None when it keeps them all)."""
        if fraction >= 1.0:
            return None
        rest = fraction_indices(len(self), fraction, seed)[1]
        return self._take(rest) if len(rest) else None

    def _take(self, idx: torch.Tensor) -> "FolderDataset":
        return FolderDataset(self.root, self.classes, self.mean, self.std, self.size, idx.tolist())


class _NoTensor:
    device = torch.device("cpu")
