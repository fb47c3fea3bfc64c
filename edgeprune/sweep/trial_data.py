"""The data a pruning step reads besides its model: calibration batches for
criteria that need gradients, and labelled unaugmented images (the sensitivity
map's loss)."""
from __future__ import annotations

import torch

CALIBRATION_BATCHES = 4


def calibration_batches(ctx, base, seed: int) -> list:
    loader = ctx.loaders.train(base, seed, augment=False)
    return [b for _, b in zip(range(CALIBRATION_BATCHES), loader)]


def labelled_images(ctx, base, seed: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` training images (unaugmented, a seeded draw) and their labels, on the device."""
    xs, ys, n = [], [], 0
    for x, y in ctx.loaders.train(base, seed, augment=False):
        xs.append(x)
        ys.append(y)
        n += len(x)
        if n >= count:
            break
    return torch.cat(xs)[:count], torch.cat(ys)[:count]
