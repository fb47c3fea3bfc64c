"""What a release checks its files on: the run's own test images (its data set read
once, and handed on to rebuild the model when it was not saved), calibration images
for int8, and the normalisation the trial used."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import EdgepruneError
from ..store import TrialRecord


@dataclass
class ReleaseInputs:
    check: torch.Tensor                 # images every file is checked on against the PyTorch model
    calibration: Optional[object]       # a BatchLoader of training images (int8), None without data
    test: Optional[object]              # a BatchLoader of test images (accuracy in a runtime)
    norm: dict                          # {"mean": [...], "std": [...]}
    data: Optional[object] = None       # the DataSplits, when the data set could be read

    @property
    def real(self) -> bool:
        return self.data is not None

    def need_calibration(self) -> None:
        if self.calibration is None:
            raise EdgepruneError("int8 needs the run's training images to calibrate; pass --data-dir DIR")


def load_inputs(cfg, record: TrialRecord) -> ReleaseInputs:
    """The inputs for `record`'s files; random ones (and no calibration) when the data
    set cannot be read (the card says so)."""
    from ..data import BatchLoader, check_dataset, load_dataset
    norm = record.metrics.get("normalization") or {}
    size = int(record.metrics.get("input_size") or 32)
    try:
        check_dataset(cfg.dataset)
        data = load_dataset(cfg.dataset, seed=cfg.seed)
    except EdgepruneError:
        return ReleaseInputs(torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(0)), None, None,
                             norm)
    mean = tuple(norm.get("mean") or data.train.mean)
    std = tuple(norm.get("std") or data.train.std)
    check = next(iter(BatchLoader(data.test, cfg.deploy.parity_images, mean, std, image_size=size)))[0]
    calibration = BatchLoader(data.train, 64, mean, std, shuffle=True, augment=False, image_size=size, seed=cfg.seed)
    test = BatchLoader(data.test, 500, mean, std, image_size=size)
    return ReleaseInputs(check, calibration, test, {"mean": list(mean), "std": list(std)}, data)
