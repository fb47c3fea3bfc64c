"""Top-1 accuracy on a held-out split."""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Iterable) -> float:
    """Top-1 accuracy in [0, 1] over (images, labels) batches, in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    try:
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    return correct / total if total else float("nan")
