"""CIFAR ResNets of He et al. 2016 (ResNet-20/32/44/56) with "option A" shortcuts.

The layout matches the widely used pretrained checkpoints (3 stages of
BasicBlocks at 16/32/64 channels, `linear` head), so they load as they are.

Option A pads the subsampled input with zero channels. Written the textbook way
(`F.pad`) a dependency tracer cannot see which channel lands where, and pruned
models come out silently wrong; `ChannelMapShortcut` states the map explicitly
(`out[:, dst] = x[:, src, ::s, ::s]`) so a pruner can keep it consistent.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .entry import ModelEntry, register_model
from .weights import Weights

_WEIGHTS_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
CHECKPOINTS = {
    "resnet20": "resnet20-12fca82f.th",
    "resnet32": "resnet32-d509ac18.th",
    "resnet44": "resnet44-014dd654.th",
    "resnet56": "resnet56-4bfd9763.th",
}


class ChannelMapShortcut(nn.Module):
    """Parameter-free shortcut: subsample by `stride`, then place input channel
    src[i] at output channel dst[i]; every other output channel is zero."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        offset = (out_channels - in_channels) // 2
        # Not in the state dict: checkpoints of the unpruned model carry no map (it is
        # implied by the shapes); a pruned model is saved whole, map included.
        self.register_buffer("src", torch.arange(in_channels), persistent=False)
        self.register_buffer("dst", torch.arange(in_channels) + offset, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        out = x.new_zeros(x.shape[0], self.out_channels, x.shape[2], x.shape[3])
        return out.index_copy(1, self.dst, x.index_select(1, self.src))

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = ChannelMapShortcut(in_planes, planes, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("CIFAR ResNet depth must be 6n+2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for stage, planes in enumerate((16, 32, 64), start=1):
            blocks = []
            for i in range(n):
                stride = 2 if (stage > 1 and i == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.linear(x)


def _build(depth: int):
    def build(num_classes: int, weights=None) -> nn.Module:
        return CifarResNet(depth, num_classes)
    return build


# The published checkpoints (He et al.'s recipe, akamaster/pytorch_resnet_cifar10) were
# trained with ImageNet normalisation and no other transform.
for _depth in (20, 32, 44, 56):
    register_model(ModelEntry(
        name=f"resnet{_depth}", family="cifar_resnet", build=_build(_depth), input_size=32, min_input_size=8,
        weights=Weights(_WEIGHTS_URL + CHECKPOINTS[f"resnet{_depth}"], num_classes=10, input_size=32)))
