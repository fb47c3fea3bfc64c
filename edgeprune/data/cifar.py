"""CIFAR-10 / CIFAR-100 in torchvision's layout, read straight into memory.

The pickled batches are read directly (no md5 check): re-packed copies carry
the original pixels in files that are not byte-identical to the archive.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, OfflineError
from .dataset import DataSplits, ImageDataset

_SPECS = {
    "cifar10": dict(folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)],
                    test=["test_batch"], meta="batches.meta", label_key="labels", names_key="label_names",
                    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), tv="CIFAR10"),
    "cifar100": dict(folder="cifar-100-python", train=["train"], test=["test"], meta="meta",
                     label_key="fine_labels", names_key="fine_label_names",
                     mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), tv="CIFAR100"),
}


def folder(name: str, root: str | Path) -> Path:
    """The batches folder under `root` (or `root` itself when it is that folder)."""
    root = Path(root)
    sub = _SPECS[name]["folder"]
    return root if root.name == sub else root / sub


def is_present(name: str, root: str | Path) -> bool:
    spec, base = _SPECS[name], folder(name, root)
    return all((base / f).is_file() for f in spec["train"] + spec["test"] + [spec["meta"]])


def check(name: str, root: str, download: bool) -> None:
    if is_present(name, root) or download:
        return
    raise ConfigError(f"dataset.root {root!r} holds no {name} (expected {folder(name, root)}/ with "
                      f"{', '.join(_SPECS[name]['test'])} and the train batches); pass --data-dir DIR "
                      "or set dataset.download: true")


def download(name: str, root: str) -> None:
    import torchvision
    try:
        getattr(torchvision.datasets, _SPECS[name]["tv"])(root, train=True, download=True)
    except (OSError, RuntimeError) as e:
        raise OfflineError(f"cannot download {name} into {root!r} ({e}); "
                           f"put the extracted {_SPECS[name]['folder']}/ there and set download: false") from None


def _read(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def load(name: str, root: str, download_missing: bool = False) -> DataSplits:
    if not is_present(name, root):
        if not download_missing:
            check(name, root, False)
        download(name, root)
    spec, base = _SPECS[name], folder(name, root)
    classes = list(_read(base / spec["meta"])[spec["names_key"]])

    def split(files: list[str]) -> ImageDataset:
        images, labels = [], []
        for f in files:
            d = _read(base / f)
            images.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(d[spec["label_key"]])
        x = torch.from_numpy(np.concatenate(images))
        y = torch.tensor(labels, dtype=torch.long)
        if y.min() < 0 or y.max() >= len(classes):
            raise ValueError(f"{base}: labels outside 0..{len(classes) - 1}")
        return ImageDataset(x, y, classes, spec["mean"], spec["std"])

    return DataSplits(name, split(spec["train"]), split(spec["test"]))
