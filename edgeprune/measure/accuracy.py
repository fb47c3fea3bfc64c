"""Top-1 accuracy on a held-out split: of a PyTorch model, or of an ONNX file in ONNX Runtime."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Union

import numpy as np

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


def onnx_accuracy(model: Union[str, Path, "object"], batches: Iterable, threads: int = 1) -> float:
    """Top-1 accuracy in [0, 1] of an ONNX model (a path or an onnxruntime session) in
    onnxruntime over (images, labels) batches, e.g. a test BatchLoader."""
    from ..deploy.export import onnx_predict
    from ..deploy.onnx_session import make_session
    session = make_session(str(model), threads) if isinstance(model, (str, Path)) else model
    correct = total = 0
    for x, y in batches:
        x = x.contiguous().numpy() if hasattr(x, "contiguous") else np.asarray(x, dtype=np.float32)
        y = y.numpy() if hasattr(y, "numpy") else np.asarray(y)
        correct += int((onnx_predict(session, x).argmax(1) == y).sum())
        total += len(y)
    return correct / total if total else float("nan")
