"""Any ImageFolder tree with a train/val split: ROOT/train/<class>/*.jpg and
ROOT/val/<class>/*.jpg (or ROOT/test/...). Images are decoded once, resized
(shorter side, then centre crop) to `image_size` and kept in memory."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, first_line
from .dataset import DataSplits, ImageDataset, channel_stats

_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}
DEFAULT_SIZE = 224


def _split_dirs(root: Path) -> tuple[Path, Path]:
    train = root / "train"
    held_out = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    return train, held_out


def check(root: str) -> None:
    train, held_out = _split_dirs(Path(root))
    if not train.is_dir() or held_out is None:
        raise ConfigError(f"dataset.root {root!r} is not an ImageFolder tree: expected {root}/train/<class>/ "
                          f"and {root}/val/<class>/ (or test/); pass --data-dir DIR")


def _load_image(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def _image_files(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.iterdir()) if f.is_file() and f.suffix.lower() in _EXTENSIONS]


def classes_of(root: str) -> list[str]:
    """The class folders of train/, checked against val/ (or test/): the same
    classes, each with at least one image in train/."""
    train, held_out = _split_dirs(Path(root))
    classes = sorted(d.name for d in train.iterdir() if d.is_dir())
    if not classes:
        raise ConfigError(f"{train} has no class folders; expected {train}/<class>/*.jpg")
    other = sorted(d.name for d in held_out.iterdir() if d.is_dir())
    if other != classes:
        only_train, only_held = sorted(set(classes) - set(other)), sorted(set(other) - set(classes))
        raise ConfigError(f"{train} and {held_out} hold different classes (only in {train.name}/: "
                          f"{', '.join(only_train[:5]) or '-'}; only in {held_out.name}/: "
                          f"{', '.join(only_held[:5]) or '-'}); give both splits the same class folders")
    empty = [c for c in classes if not _image_files(train / c)]
    if empty:
        raise ConfigError(f"class folder {train / empty[0]} holds no images ({len(empty)} empty class(es)); add "
                          f"images ({', '.join(sorted(_EXTENSIONS))}) or remove the folder")
    return classes


def _read_split(path: Path, classes: list[str], size: int, skip_bad: bool = False) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
    images, labels, bad = [], [], []
    for label, cls in enumerate(classes):
        cdir = path / cls
        if not cdir.is_dir():
            continue
        for f in _image_files(cdir):
            try:
                images.append(_load_image(f, size))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                if not skip_bad:
                    raise ConfigError(f"image {f} cannot be read ({type(e).__name__}: {first_line(e, 120)}); "
                                      "remove or replace it, or set dataset.skip_bad_images: true") from None
                bad.append(f)
                continue
            labels.append(label)
    if bad:
        print(f"edgeprune: skipped {len(bad)} unreadable image(s) in {path} (the first: {bad[0]})", file=sys.stderr)
    if not images:
        raise ConfigError(f"{path} holds no images in class folders; expected {path}/<class>/*.jpg")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long)


def load_streaming(root: str, image_size: int | None = None) -> DataSplits:
    """Both splits as on-disk FolderDatasets; ImageNet statistics for normalisation
    (computing the tree's own would mean reading all of it)."""
    from .folder import FolderDataset
    check(root)
    train_dir, held_out = _split_dirs(Path(root))
    classes = classes_of(root)
    stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    size = image_size or DEFAULT_SIZE
    return DataSplits(Path(root).name, FolderDataset(train_dir, classes, *stats, size),
                      FolderDataset(held_out, classes, *stats, size))


def load(root: str, image_size: int | None = None, skip_bad: bool = False) -> DataSplits:
    check(root)
    train_dir, held_out = _split_dirs(Path(root))
    classes = classes_of(root)
    size = image_size or DEFAULT_SIZE
    xtr, ytr = _read_split(train_dir, classes, size, skip_bad)
    xte, yte = _read_split(held_out, classes, size, skip_bad)
    mean, std = channel_stats(xtr)
    return DataSplits(Path(root).name, ImageDataset(xtr, ytr, classes, mean, std),
                      ImageDataset(xte, yte, classes, mean, std))
