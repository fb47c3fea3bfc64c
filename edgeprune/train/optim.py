"""Optimisers and the learning-rate schedule (linear warm-up, then cosine to zero).

An optimiser is registered as `factory(model, finetune_config) -> torch.optim.Optimizer`."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..registry import OPTIMIZERS


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Decay only weight matrices and kernels: decaying BatchNorm scales and biases
    # hurts accuracy and buys nothing.
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@OPTIMIZERS.register("sgd")
def sgd(model: nn.Module, cfg) -> torch.optim.Optimizer:
    return torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.momentum > 0)


@OPTIMIZERS.register("adamw")
def adamw(model: nn.Module, cfg) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
