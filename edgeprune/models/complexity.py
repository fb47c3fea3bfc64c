"""Static cost of an architecture: parameters, MACs, serialized size, sparsity (the
measure stage reports them; pruning searches on them)."""
from __future__ import annotations

import io

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero_params(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: int, channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass at batch 1, from PyTorch's own
    FLOP counter (convolutions and matrix products; a MAC is 2 FLOPs)."""
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, channels, input_size, input_size)
        with FlopCounterMode(display=False) as counter:
            model(x)
        return int(counter.get_total_flops() // 2)
    finally:
        model.train(was_training)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of the saved model (whole module, architecture included, as edgeprune saves it)."""
    buf = io.BytesIO()
    torch.save(model, buf)
    return buf.getbuffer().nbytes
