"""An image dataset held in memory as one uint8 tensor (N x 3 x H x W).

CIFAR-size data fits easily (50,000 images are 150 MB), and whole-batch tensor
operations on it are what makes CPU fine-tuning fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class ImageDataset:
    images: torch.Tensor   # uint8, N x 3 x H x W
    labels: torch.Tensor   # int64, N
    classes: list[str]
    mean: tuple[float, float, float]   # the dataset's own per-channel statistics
    std: tuple[float, float, float]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 N x 3 x H x W, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def to(self, device) -> "ImageDataset":
        """The same data on `device` (a GPU holds CIFAR-10 whole: 150 MB of uint8)."""
        return ImageDataset(self.images.to(device), self.labels.to(device), self.classes, self.mean, self.std)

    def subset(self, fraction: float, seed: int = 0) -> "ImageDataset":
        """A seeded random `fraction` of the samples (the same for every trial)."""
        if fraction >= 1.0:
            return self
        return self._take(fraction_indices(len(self), fraction, seed)[0])

    def rest(self, fraction: float, seed: int = 0) -> Optional["ImageDataset"]:
        """The samples `subset(fraction, seed)` leaves out (None when it keeps them all)."""
        if fraction >= 1.0:
            return None
        rest = fraction_indices(len(self), fraction, seed)[1]
        return self._take(rest) if len(rest) else None

    def _take(self, idx: torch.Tensor) -> "ImageDataset":
        return ImageDataset(self.images[idx], self.labels[idx], self.classes, self.mean, self.std)


def fraction_indices(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded draw of round(n * fraction) indices (at least one) out of n, and the others,
    each sorted."""
    k = max(1, int(round(n * fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:k].sort().values, order[k:].sort().values


@dataclass
class DataSplits:
    name: str
    train: ImageDataset
    test: ImageDataset
    unlabeled: Optional[ImageDataset] = None    # a user's own images for rebuilding pruned layers, if given
    # the test split's images that dataset.test_fraction leaves out: labelled, never trained on and
    # in no reported accuracy (int8 accuracy control can measure its drop there: held_out_from=test)
    test_rest: Optional[ImageDataset] = None

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    def to(self, device) -> "DataSplits":
        return DataSplits(self.name, self.train.to(device), self.test.to(device),
                          self.unlabeled.to(device) if self.unlabeled is not None else None,
                          self.test_rest.to(device) if self.test_rest is not None else None)


def channel_stats(images: torch.Tensor, max_images: int = 10_000) -> tuple[tuple, tuple]:
    """Per-channel mean and std in [0, 1] units, on up to `max_images` images."""
    x = images[:max_images].float().div_(255)
    return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).tolist())
