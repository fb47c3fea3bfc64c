"""A Ray worker's side of a sweep: the data as it travels through the object store
(packed once by the driver, read zero-copy by every worker on a node), and the
worker's trial context, kept between the tasks of one sweep."""
from __future__ import annotations

import warnings

import torch

from ...data import DataSplits, ImageDataset
from ...registry import restore_plugins
from ..context import TrialContext


# -- data through the object store --------------------------------------------

def pack(data: DataSplits) -> dict:
    def split(d: ImageDataset) -> dict:
        return {"images": d.images.numpy(), "labels": d.labels.numpy(), "classes": d.classes,
                "mean": d.mean, "std": d.std}
    return {"name": data.name, "train": split(data.train), "test": split(data.test),
            "unlabeled": split(data.unlabeled) if data.unlabeled is not None else None,
            "test_rest": split(data.test_rest) if data.test_rest is not None else None}


def unpack(packed: dict) -> DataSplits:
    def split(d: dict) -> ImageDataset:
        with warnings.catch_warnings():  # the object store's arrays are read-only; we never write them
            warnings.simplefilter("ignore", UserWarning)
            return ImageDataset(torch.from_numpy(d["images"]), torch.from_numpy(d["labels"]), d["classes"],
                                tuple(d["mean"]), tuple(d["std"]))
    unlabeled, test_rest = packed.get("unlabeled"), packed.get("test_rest")
    return DataSplits(packed["name"], split(packed["train"]), split(packed["test"]),
                      split(unlabeled) if unlabeled is not None else None,
                      split(test_rest) if test_rest is not None else None)


# -- worker side ---------------------------------------------------------------

# The worker's context, by settings: one at a time. A worker of a long-lived cluster serves
# sweep after sweep; each context holds its unpruned models and their files, so the one
# of an earlier sweep is closed when another sweep's task arrives.
_CONTEXTS: dict[str, TrialContext] = {}


def context(shared: dict, packed_data: dict) -> TrialContext:
    restore_plugins(shared["plugins"])
    torch.set_num_threads(shared["threads"])
    key = shared["settings"].key + repr(shared["options"])
    if key not in _CONTEXTS:
        for old in _CONTEXTS.values():
            old.close()
        _CONTEXTS.clear()
        # a worker given no GPU by Ray sees none (CUDA_VISIBLE_DEVICES), so "auto" picks the CPU
        _CONTEXTS[key] = TrialContext(shared["settings"], unpack(packed_data), shared["options"])
    return _CONTEXTS[key]


