"""Unlabeled images: what rebuilding pruned layers calibrates on when they come from
a folder of the user's own (`prune.reconstruct_from: PATH`) instead of the training
split. Every image under the folder (any depth) is read once, centre-cropped to the
data set's side, and kept in memory as uint8, like the splits; labels are -1."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError
from .dataset import ImageDataset
from .imagefolder import _EXTENSIONS, _load_image


def image_files(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"prune.reconstruct_from {str(folder)!r} is not a folder; give a folder of images "
                          "(or `train` for the training split)")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _EXTENSIONS)


def check_unlabeled(folder: str | Path, count: int) -> None:
    """Before anything is written: the folder holds at least `count` images."""
    n = len(image_files(folder))
    if n < count:
        raise ConfigError(f"prune.reconstruct: {count} images asked for, but {folder} holds {n}; lower "
                          "prune.reconstruct or add images")


def load_unlabeled(folder: str | Path, count: int, side: int, like: ImageDataset, seed: int = 0) -> ImageDataset:
    """`count` images drawn (seeded) from the folder, `side` pixels square."""
    files = image_files(folder)
    check_unlabeled(folder, count)
    pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    images = []
    for i in pick.tolist():
        try:
            images.append(torch.from_numpy(_load_image(files[i], side)))
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
            raise ConfigError(f"{files[i]} cannot be read as an image ({type(e).__name__}); remove it from "
                              "prune.reconstruct_from's folder") from None
    x = torch.stack(images)
    return ImageDataset(x, torch.full((len(x),), -1, dtype=torch.int64), like.classes, like.mean, like.std)
