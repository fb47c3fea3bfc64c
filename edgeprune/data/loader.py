"""Batches straight from the in-memory uint8 tensor, augmented as whole batches.

Random crop (zero padding of 1/8 of the side, as the CIFAR recipe pads 4 px)
and horizontal flip run as tensor indexing on the batch, then an optional
resize and the normalisation; no per-image PIL work, no worker processes.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from .dataset import ImageDataset


def random_crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random translation within a zero-padded border, and random h-flip."""
    b, c, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    # random numbers come from the CPU generator, so results match on every device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    rows = (oy[:, None] + torch.arange(h))[:, :, None]            # b x h x 1
    cols = (ox[:, None] + torch.arange(w))[:, None, :]            # b x 1 x w
    cols = torch.where(flip[:, None, None], (ox[:, None] + (w - 1 - torch.arange(w)))[:, None, :], cols)
    batch = torch.arange(b)[:, None, None]
    dev = x.device
    return padded.permute(0, 2, 3, 1)[batch.to(dev), rows.to(dev), cols.to(dev)].permute(0, 3, 1, 2)


class BatchLoader:
    """Iterates (images, labels) float batches, normalised, at `image_size`."""

    def __init__(self, data: ImageDataset, batch_size: int, mean, std, *, shuffle: bool = False,
                 augment: bool = False, image_size: Optional[int] = None, seed: int = 0,
                 channels_last: bool = False, drop_last: bool = False):
        self.data, self.batch_size = data, batch_size
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.image_size = image_size or data.image_size
        self.channels_last = channels_last
        self.generator = torch.Generator().manual_seed(seed)
        device = data.images.device            # batches are made where the data lives
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        n = len(self.data) / self.batch_size
        return int(n) if self.drop_last else math.ceil(n)

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        if self.augment:
            images = random_crop_flip(images, self.generator)
        x = images.float().div_(255)
        if self.image_size != x.shape[-1]:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.data.images.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.transform(self.data.images[idx]), self.data.labels[idx]
