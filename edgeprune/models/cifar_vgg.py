"""VGG for 32x32 inputs (conv stacks with BatchNorm, one linear head), as used
throughout the CIFAR pruning literature (Li et al. 2017)."""
from __future__ import annotations

import torch.nn as nn

from .entry import ModelEntry, register_model

_LAYOUTS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class CifarVGG(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, width: float = 1.0):
        super().__init__()
        layers, in_ch = [], 3
        for v in _LAYOUTS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(1, int(v * width))
            layers += [nn.Conv2d(in_ch, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            in_ch = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def _build(depth: int):
    def build(num_classes: int, weights=None) -> nn.Module:
        return CifarVGG(depth, num_classes)
    return build


for _depth in _LAYOUTS:
    register_model(ModelEntry(name=f"cifar_vgg{_depth}", family="cifar_vgg", build=_build(_depth),
                              input_size=32, min_input_size=32,
                              mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)))
