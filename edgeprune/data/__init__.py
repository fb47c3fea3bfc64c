"""Datasets: `load_dataset(config)` reads a registered dataset into memory;
`BatchLoader` serves augmented, normalised batches from it.

A dataset is a `DatasetSource` in the dataset registry: `check` fails early (before
anything is written) when the data is not there, `load` reads it, and `options` is
the pydantic model of its own settings (`dataset.options` in a config), if any.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import ConfigError, EdgepruneError
from ..registry import DATASETS
from . import cifar, imagefolder
from .dataset import DataSplits, ImageDataset, channel_stats
from .loader import BatchLoader, random_crop_flip
from .streaming import StreamingLoader

__all__ = ["load_dataset", "check_dataset", "DataSplits", "ImageDataset", "BatchLoader", "StreamingLoader",
           "DatasetSource", "make_loader", "resolve_normalization", "IMAGENET_STATS", "channel_stats",
           "random_crop_flip"]

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class DatasetSource:
    load: Callable[[object], DataSplits]            # load(dataset config) -> the splits, in memory
    check: Optional[Callable[[object], None]] = None  # raises ConfigError when the data is not there
    options: Optional[type] = None                  # a pydantic model of dataset.options
    description: str = ""


for _name in ("cifar10", "cifar100"):
    DATASETS.add(_name, DatasetSource(
        check=lambda cfg, n=_name: cifar.check(n, cfg.root, cfg.download),
        load=lambda cfg, n=_name: cifar.load(n, cfg.root, cfg.download),
        description=f"{_name.upper()} in torchvision's layout (python pickled batches)"))
DATASETS.add("imagefolder", DatasetSource(
    check=lambda cfg: imagefolder.check(cfg.root),
    load=lambda cfg: (imagefolder.load(cfg.root, cfg.image_size, cfg.skip_bad_images) if cfg.in_memory
                      else imagefolder.load_streaming(cfg.root, cfg.image_size)),
    description="ROOT/train/<class>/ and ROOT/val/<class>/ image trees"))


def make_loader(data, batch_size: int, mean, std, **kwargs):
    """The fast in-memory BatchLoader, or the textbook StreamingLoader for on-disk data."""
    from .folder import FolderDataset
    if isinstance(data, FolderDataset):
        kwargs.pop("drop_last", None)
        image_size = kwargs.pop("image_size", None) or data.image_size
        return StreamingLoader(data.root, batch_size, mean, std, image_size=image_size, indices=data.indices,
                               **kwargs)
    return BatchLoader(data, batch_size, mean, std, **kwargs)


def check_dataset(cfg) -> None:
    """Fail early, with a fix, when the configured dataset is not on disk."""
    try:
        source = DATASETS.get(cfg.name)
    except EdgepruneError as e:
        raise ConfigError(f"dataset.name: {e}") from None
    if source.check is not None:
        source.check(cfg)


def load_dataset(cfg, seed: int = 0) -> DataSplits:
    """The configured dataset, cut to `train_fraction` / `test_fraction`."""
    splits = DATASETS.get(cfg.name).load(cfg)
    if not isinstance(splits, DataSplits):
        raise EdgepruneError(f"dataset {cfg.name!r}: its loader returned {type(splits).__name__}, not DataSplits")
    return DataSplits(splits.name, splits.train.subset(cfg.train_fraction, seed),
                      splits.test.subset(cfg.test_fraction, seed + 1),
                      test_rest=splits.test.rest(cfg.test_fraction, seed + 1))


def resolve_normalization(setting, model_meta: dict, data: ImageDataset) -> tuple[tuple, tuple]:
    """(mean, std) for a trial. 'auto' uses the statistics the model's weights were
    trained with when it has pretrained or checkpoint weights, else the dataset's."""
    if setting == "dataset":
        return data.mean, data.std
    if setting == "imagenet":
        return IMAGENET_STATS
    if setting == "auto":
        if model_meta.get("weights", "random") != "random":
            return tuple(model_meta["mean"]), tuple(model_meta["std"])
        return data.mean, data.std
    mean, std = setting
    return tuple(mean), tuple(std)
