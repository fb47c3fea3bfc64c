"""Training throughput: edgeprune's fine-tuning path vs the textbook loop.

    python bench/finetune_throughput.py [--data-dir ../shared/datasets] [--steps 30]

Same model, batch size, optimiser and augmentation (random crop with 4 px padding,
horizontal flip, normalisation) on the real CIFAR-10, measured side by side:
  textbook   per-image PIL transforms (what torchvision's CIFAR10 dataset does),
             DataLoader, contiguous tensors
  edgeprune  uint8 tensor in memory, whole-batch tensor augmentation, channels_last
Models: ResNet-20 and MobileNetV2 (torchvision, width 1.0) at 32x32.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from _common import write
from edgeprune.config import DatasetConfig, FinetuneConfig
from edgeprune.data import BatchLoader, load_dataset
from edgeprune.models import create_model
from edgeprune.train import finetune


class TextbookCIFAR(Dataset):
    """torchvision.datasets.CIFAR10's __getitem__: HWC uint8 -> PIL -> transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.data = images.permute(0, 2, 3, 1).numpy()
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def textbook_rate(model, data, batch, steps, warmup, workers) -> float:
    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(data.mean, data.std)])
    loader = DataLoader(TextbookCIFAR(data.images, data.labels, tf), batch_size=batch, shuffle=True,
                        num_workers=workers, drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    seen, t0 = 0, None
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            t0, seen = time.perf_counter(), 0
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
        if i + 1 == warmup + steps:
            break
    return seen / (time.perf_counter() - t0)


def edgeprune_rate(model, data, batch, steps, warmup) -> float:
    loader = BatchLoader(data, batch, data.mean, data.std, shuffle=True, augment=True, channels_last=True,
                         drop_last=True)
    cfg = FinetuneConfig(epochs=100, max_steps=warmup, batch_size=batch)
    finetune(model, loader, cfg)                           # warm-up (allocator, kernels)
    cfg = FinetuneConfig(epochs=100, max_steps=steps, batch_size=batch)
    result = finetune(model, loader, cfg)
    return steps * batch / result.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=0, help="textbook DataLoader workers (0 was fastest here)")
    ap.add_argument("--out")
    args = ap.parse_args()
    data = load_dataset(DatasetConfig(root=args.data_dir)).train
    rows = {}
    for name in ("resnet20", "mobilenet_v2"):
        rates = {}
        for path in ("textbook", "edgeprune"):
            torch.manual_seed(0)
            model = create_model(name, 10, pretrained=False)
            if path == "textbook":
                rates[path] = textbook_rate(model, data, args.batch, args.steps, args.warmup, args.workers)
            else:
                rates[path] = edgeprune_rate(model, data, args.batch, args.steps, args.warmup)
        rows[name] = {"textbook_img_per_s": rates["textbook"], "edgeprune_img_per_s": rates["edgeprune"],
                      "speedup": rates["edgeprune"] / rates["textbook"]}
        print(f"{name:14s} textbook {rates['textbook']:7.0f} img/s   edgeprune {rates['edgeprune']:7.0f} img/s"
              f"   x{rows[name]['speedup']:.2f}")
    path = write("finetune_throughput", {"batch_size": args.batch, "steps": args.steps, "models": rows,
                                         "aim": "speedup >= 2"}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
