"""The rows of a layer's least-squares problem: sampled output positions, and what
the layer reads (inputs) and computes (outputs) there.

A conv's row is one output pixel: the k x k x C_in patch under it. A linear
layer's row is one vector of its input (a token, a pixel in channels-last
layout, or the whole sample). The same positions are sampled in the unpruned and
the pruned model, from a generator seeded per layer, so targets and inputs pair up.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


def positions(n_images: int, per_image: int, total: int, generator: torch.Generator) -> torch.Tensor:
    """(n_images, k) flat output positions: all of them when `per_image` covers the
    map, else `per_image` drawn without replacement per image."""
    if per_image >= total:
        return torch.arange(total).expand(n_images, total)
    return torch.rand(n_images, total, generator=generator).topk(per_image, 1).indices.sort(1).values


def output_rows(layer: nn.Module, out: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """(images x k, outputs) of the layer's output at `pos`."""
    if isinstance(layer, nn.Conv2d):      # B, H*W, C: free for channels-last outputs
        flat = out.permute(0, 2, 3, 1).reshape(out.shape[0], -1, out.shape[1])
    else:
        flat = out.reshape(out.shape[0], -1, out.shape[-1])               # B, T, F
    picked = flat.gather(1, pos[:, :, None].expand(-1, -1, flat.shape[2]).to(out.device))
    return picked.reshape(-1, flat.shape[2])


def positions_in(layer: nn.Module, out_shape: torch.Size) -> int:
    if isinstance(layer, nn.Conv2d):
        return int(out_shape[2] * out_shape[3])
    return int(math.prod(out_shape[1:-1])) if len(out_shape) > 2 else 1


def _conv_padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding of the conv's input."""
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0, 0, 0)
        pads = []
        for k, d in zip(reversed(conv.kernel_size), reversed(conv.dilation)):      # W first
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = conv.padding
    return (pw, pw, ph, ph)


def input_rows(layer: nn.Module, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """(images x k, inputs) the layer reads at `pos`; a conv's columns are ordered as
    its weight's (C_in, kh, kw) are."""
    if isinstance(layer, nn.Linear):
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        picked = flat.gather(1, pos[:, :, None].expand(-1, -1, flat.shape[2]).to(x.device))
        return picked.reshape(-1, flat.shape[2])
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    dh, dw = layer.dilation
    left, right, top, bottom = _conv_padding(layer)
    h, w = x.shape[2], x.shape[3]
    w_out = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    pos = pos.to(x.device)
    oy, ox = pos // w_out, pos % w_out                                    # B, k
    ky = torch.arange(kh, device=x.device) * dh
    kx = torch.arange(kw, device=x.device) * dw
    rows = (oy * sh - top)[:, :, None, None] + ky[None, None, :, None]    # B, k, kh, 1
    cols = (ox * sw - left)[:, :, None, None] + kx[None, None, None, :]   # B, k, 1, kw
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    # the zero padding is read as zeros at the clamped indices: no padded copy of the map
    patches = x.permute(0, 2, 3, 1)[batch, rows.clamp(0, h - 1), cols.clamp(0, w - 1)]   # B, k, kh, kw, C
    if left or right or top or bottom:
        inside = ((rows >= 0) & (rows < h)) & ((cols >= 0) & (cols < w))
        patches = patches * inside[..., None].to(patches.dtype)
    return patches.permute(0, 1, 4, 2, 3).reshape(-1, x.shape[1] * kh * kw)
