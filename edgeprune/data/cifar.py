"""CIFAR-10 / CIFAR-100 in torchvision's layout, read straight into memory.

The pickled batches are read directly (no md5 check): re-packed copies carry
the original pixels in files that are not byte-identical to the archive.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, OfflineError, first_line
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
    import shutil

    import torchvision
    made = not Path(root).exists()
    try:
        getattr(torchvision.datasets, _SPECS[name]["tv"])(root, train=True, download=True)
    except (OSError, RuntimeError) as e:
        if made:           # a start that fails writes nothing: not even the folder it would have filled
            shutil.rmtree(root, ignore_errors=True)
        raise OfflineError(f"cannot download {name} into {root!r} ({first_line(e, 160)}); offline, pass --data-dir "
                           f"DIR (a folder holding the extracted {_SPECS[name]['folder']}/) and set download: false; "
                           "pretrained weights come from --weights-dir DIR") from None


# What the CIFAR batches (pickled by numpy) need to unpickle, and nothing else: an
# unpickler that can build any other object could be made to run code.
_SAFE_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"),
                 ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                 ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                 ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                 ("_codecs", "encode")}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR batch never holds")
        if module.startswith("numpy.core") and not hasattr(np, "core"):   # numpy 2 moved numpy.core
            module = module.replace("numpy.core", "numpy._core")
        return super().find_class(module, name)


def _read(path: Path) -> dict:
    """One pickled batch, read with the restricted unpickler; any problem is one line naming the file."""
    try:
        with open(path, "rb") as f:
            d = _RestrictedUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError) as e:
        raise ConfigError(f"{path} is not a CIFAR batch that can be read safely ({type(e).__name__}: "
                          f"{first_line(e, 160)}); restore the file (or the dataset) and try again") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path} holds {type(d).__name__}, not a CIFAR batch (a dict of data and labels)")
    return d


def _batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 3 x 32 x 32 uint8, labels N int64) of one batch, checked."""
    d = _read(path)
    data, labels = d.get("data"), d.get(label_key)
    if not isinstance(data, np.ndarray) or labels is None:
        raise ConfigError(f"{path} lacks 'data' or {label_key!r}: not a CIFAR batch")
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ConfigError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 N x 3072 (32 x 32 RGB)")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"{path}: {len(labels)} labels for {data.shape[0]} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError(f"{path}: labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load(name: str, root: str, download_missing: bool = False) -> DataSplits:
    if not is_present(name, root):
        if not download_missing:
            check(name, root, False)
        download(name, root)
    spec, base = _SPECS[name], folder(name, root)
    meta = _read(base / spec["meta"])
    classes = meta.get(spec["names_key"])
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"{base / spec['meta']} has no list of class names under {spec['names_key']!r}")

    def split(files: list[str]) -> ImageDataset:
        images, labels = [], []
        for f in files:
            x, y = _batch(base / f, spec["label_key"], len(classes))
            images.append(x)
            labels.append(y)
        return ImageDataset(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)),
                            classes, spec["mean"], spec["std"])

    return DataSplits(name, split(spec["train"]), split(spec["test"]))
