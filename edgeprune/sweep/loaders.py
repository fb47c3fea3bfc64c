"""The batches a trial is fed: training (augmented, shuffled by the trial's seed), test,
and what deployment files are checked and calibrated on, all normalised as the
unpruned model's weights expect and sized to its input."""
from __future__ import annotations

from typing import Optional

import torch

from ..data import BatchLoader, DataSplits, make_loader


class Loaders:
    def __init__(self, settings, data: DataSplits, device: torch.device):
        self.settings = settings
        self.host = data                        # on the CPU: exports and quantization read this
        # the dataset moves to the device once (a GPU holds CIFAR whole); models visit it
        self.data = data.to(device) if device.type != "cpu" else data

    def train(self, base, seed: int, augment: Optional[bool] = None) -> BatchLoader:
        s = self.settings
        return make_loader(self.data.train, s.finetune.batch_size, base.mean, base.std, shuffle=True,
                           augment=s.dataset.augment if augment is None else augment, image_size=base.input_size,
                           seed=seed, channels_last=s.finetune.channels_last)

    def test(self, base) -> BatchLoader:
        s = self.settings
        return make_loader(self.data.test, s.measure.eval_batch_size, base.mean, base.std,
                           image_size=base.input_size, channels_last=s.finetune.channels_last)

    def parity_images(self, base) -> torch.Tensor:
        """Test images every exported file is checked on (deploy.parity_images of them)."""
        loader = make_loader(self.host.test, self.settings.deploy.parity_images, base.mean, base.std,
                             image_size=base.input_size)
        return next(iter(loader))[0]

    def calibration(self, base, seed: int, size: int) -> BatchLoader:
        """Training images, unaugmented, at `size`: what int8 ranges are calibrated on."""
        return make_loader(self.host.train, 64, base.mean, base.std, shuffle=True, augment=False, image_size=size,
                           seed=seed)

    def held_out(self, base, seed: int, size: int, skip: int, n: int, source: str = "train") -> list:
        """`n` labelled images, unaugmented, at `size`, that int8 accuracy control measures
        its drop on: neither calibration images nor the test set. From "train": the training
        images after the first `skip` of the calibration order (the calibration images);
        from "test": the test split's images that dataset.test_fraction leaves out."""
        if source == "test":
            rest = self.host.test_rest
            if rest is None:
                return []
            loader = make_loader(rest, 64, base.mean, base.std, shuffle=True, augment=False, image_size=size,
                                 seed=seed)
            return _first(loader, 0, n)
        return _first(self.calibration(base, seed, size), skip, n)

    def reconstruction_images(self, base, seed: int, count: int) -> torch.Tensor:
        """`count` unlabeled images, normalised and sized for the model, on the device:
        a seeded draw from the training split (labels unused), or the user's own folder
        (prune.reconstruct_from)."""
        source = self.data.train if self.settings.prune.reconstruct_from == "train" else self.data.unlabeled
        count = min(count, len(source))        # the default count, on a smaller split (preflight refuses a set one)
        loader = make_loader(source, min(count, 256), base.mean, base.std, shuffle=True, augment=False,
                             image_size=base.input_size, seed=seed)
        parts, n = [], 0
        for x, _ in loader:
            parts.append(x)
            n += len(x)
            if n >= count:
                break
        return torch.cat(parts)[:count]

    def host_test(self, base) -> BatchLoader:
        """Test images on the CPU (accuracy in a runtime)."""
        return make_loader(self.host.test, self.settings.measure.eval_batch_size, base.mean, base.std,
                           image_size=base.input_size)


def _first(loader, skip: int, n: int) -> list:
    """(images, labels) batches of the `n` samples after the first `skip` of `loader`."""
    out, seen, got = [], 0, 0
    for x, y in loader:
        start = max(0, skip - seen)
        seen += len(x)
        if start >= len(x):
            continue
        take = min(len(x) - start, n - got)
        out.append((x[start:start + take], y[start:start + take]))
        got += take
        if got >= n:
            break
    return out
