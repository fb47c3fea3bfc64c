"""The textbook input path, for ImageFolder trees too large to hold in memory:
torchvision's ImageFolder + PIL transforms + a DataLoader with worker processes.
Slower than the in-memory path on CIFAR-size data (see bench/finetune_throughput.py),
but its memory use does not grow with the dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


class StreamingLoader:
    """Same interface as BatchLoader: iterates normalised (images, labels) batches."""

    def __init__(self, folder: str | Path, batch_size: int, mean, std, *, image_size: int, shuffle: bool = False,
                 augment: bool = False, seed: int = 0, channels_last: bool = False, num_workers: int = 0,
                 dataset: Optional[torch.utils.data.Dataset] = None, indices: Optional[list[int]] = None):
        steps = [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
        if augment:
            steps += [transforms.RandomCrop(image_size, padding=max(1, image_size // 8)),
                      transforms.RandomHorizontalFlip()]
        steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
        tf = transforms.Compose(steps)
        if dataset is None:
            self.dataset = datasets.ImageFolder(str(folder), transform=tf)
        else:
            self.dataset = dataset
            self.dataset.transform = tf
        if indices is not None:
            self.dataset = torch.utils.data.Subset(self.dataset, indices)
        self.generator = torch.Generator().manual_seed(seed)
        self.channels_last = channels_last
        self.image_size = image_size
        self.loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                                 generator=self.generator, persistent_workers=num_workers > 0)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
