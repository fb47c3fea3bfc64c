"""Fine-tuning throughput on a GPU: torchvision ResNet-18 and ResNet-50 at 32x32 on
CIFAR-10 (or CIFAR-format data made here when none is given), edgeprune's path:
the dataset on the device, batched augmentation, channels_last, bf16 autocast, and
with torch.compile. Prints and writes img/s per model and setting.

    python bench/gpu/throughput.py [--data-dir DIR] [--steps 200] [--out bench/results/gpu/throughput-CARD.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import machine  # noqa: E402

from edgeprune.config import FinetuneConfig  # noqa: E402
from edgeprune.data import BatchLoader, DataSplits, ImageDataset  # noqa: E402
from edgeprune.models import create_model  # noqa: E402
from edgeprune.train import finetune  # noqa: E402


def data(data_dir: str | None, device) -> tuple[ImageDataset, str]:
    if data_dir and (Path(data_dir) / "cifar-10-batches-py").is_dir():
        from edgeprune.config import DatasetConfig
        from edgeprune.data import load_dataset
        return load_dataset(DatasetConfig(name="cifar10", root=data_dir)).train.to(device), "cifar10"
    g = torch.Generator().manual_seed(0)      # CIFAR-shaped, made here: throughput does not read pixels
    images = torch.randint(0, 255, (20_000, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (20_000,), generator=g)
    return ImageDataset(images, labels, [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3).to(device), "synthetic"


def measure(name: str, train: ImageDataset, device, steps: int, amp: str, compile_: bool, batch: int) -> float:
    model = create_model(name, 10, pretrained=False).to(device)
    cfg = FinetuneConfig(epochs=100, max_steps=steps, batch_size=batch, amp=amp, compile=compile_)
    loader = BatchLoader(train, batch, train.mean, train.std, shuffle=True, augment=True, channels_last=True)
    finetune(model, loader, cfg.model_copy(update={"max_steps": min(20, steps)}))      # warm-up (and compile)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = finetune(model, loader, cfg)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result.steps * batch / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--out")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    train, source = data(args.data_dir, device)
    out = Path(args.out or f"bench/results/gpu/throughput-{card.replace(' ', '_')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    # setting by setting, compiled last: compiling takes the longest, and a run stopped at its time
    # limit then loses the fewest settings
    for amp, compile_ in (("off", False), ("bf16", False), ("bf16", True)):
        for name in args.models:
            ips = measure(name, train, device, args.steps, amp, compile_, args.batch)
            rows.append({"model": name, "amp": amp, "compile": compile_, "images_per_second": round(ips, 1)})
            print(f"{card} {name} amp={amp} compile={compile_}: {ips:,.0f} img/s", flush=True)
            # written after each setting: a run stopped at its time limit keeps what it measured
            out.write_text(json.dumps({"machine": machine(), "card": card, "data": source, "steps": args.steps,
                                       "batch": args.batch, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
