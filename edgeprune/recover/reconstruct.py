"""Rebuild a pruned model's layers by least squares so that, fed the pruned model's
own inputs, each reproduces what the unpruned layer computed on its kept channels.

Cost is linear in depth. Per wave of calibration images, the unpruned model runs
once (in chunks) and records each layer's output at sampled positions; then the
pruned model runs once on the whole wave, and a hook in front of each layer
solves that layer from the inputs that arrive there, which come through the
layers already rebuilt, before the layer runs. The wave size bounds the memory:
every image of a wave is in flight at once. With more images than one wave
holds, the first wave solves every layer from its own rows, the middle waves add
theirs to the normal equations, and the last solves from all of them (the earlier
waves' rows were gathered through the prefix as the first wave solved it).

A BatchNorm that reads the layer's output is folded into the solve: the target
is the unpruned model's BatchNorm output, mapped back through the pruned model's
BatchNorm, and the solved bias becomes that BatchNorm's running-mean shift (the
architecture keeps its parameters, so saved models load as before). A layer that
feeds a residual sum alone is solved for the sum (residual.py), and one that a
ReLU follows asks negative targets only for "at or below zero" (wave.py). What
each of these choices is worth was measured: bench/reconstruction.py.
"""
from __future__ import annotations

import math
import time
from typing import Iterable, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

from ..errors import EdgepruneError
from .batchnorm import align_batchnorm
from .layers import MAX_INPUTS, plan
from .memory import PeakMemory
from .report import ReconstructReport
from .wave import LayerState, _fast, run_wave

Images = Union[torch.Tensor, Iterable]
ALIGN_IMAGES = 1024        # images whose BatchNorm input statistics the alignment measures
EVAL_IMAGES = 256          # images the logit errors are measured on, without held-out ones


def _check(name: str, value, low, integer: bool = True) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else isinstance(value, (int, float))
    if not ok or value < low or (not integer and not math.isfinite(value)):
        raise EdgepruneError(f"reconstruct: {name} must be {'an integer' if integer else 'a number'} >= {low}, "
                             f"got {value!r}")


def collect_images(images: Images, limit: Optional[int] = None) -> torch.Tensor:
    """A (N, C, H, W) float tensor from a tensor or batches (tensors or (images, labels))."""
    if isinstance(images, torch.Tensor):
        x = images
    else:
        parts, n = [], 0
        for batch in images:
            b = batch[0] if isinstance(batch, (tuple, list)) else batch
            if not isinstance(b, torch.Tensor):
                raise EdgepruneError(f"reconstruct: calibration batches must be tensors or (images, labels), "
                                     f"got {type(b).__name__}")
            parts.append(b.detach())
            n += len(b)
            if limit is not None and n >= limit:
                break
        if not parts:
            raise EdgepruneError("reconstruct: no calibration images were given")
        x = torch.cat(parts)
    if x.dim() < 2 or not x.is_floating_point():
        raise EdgepruneError(f"reconstruct: calibration images must be a float N x C x H x W tensor, "
                             f"got {x.dtype} {tuple(x.shape)}")
    if len(x) == 0:
        raise EdgepruneError("reconstruct: no calibration images were given")
    if limit is not None and len(x) < limit:
        raise EdgepruneError(f"reconstruct: {limit} calibration images asked for, only {len(x)} available; "
                             "lower the count")
    return x[:limit] if limit is not None else x


def reconstruct(unpruned: nn.Module, pruned: nn.Module, images: Images, *,
                kept_outputs: Optional[Mapping[str, Sequence[int]]] = None, count: Optional[int] = None,
                max_rows: int = 32768, ridge: Union[float, str] = "auto", batch_size: int = 256, memory_mb: int = 2048,
                eval_images: Optional[Images] = None, layers: Optional[Sequence[str]] = None,
                residual: bool = True, relu_steps: int = 2, seed: int = 0,
                max_inputs: int = MAX_INPUTS, align_bn: bool = True) -> ReconstructReport:
    """Rebuild `pruned` in place (it ends in eval mode; `unpruned` is not changed).

    images        unlabeled calibration images: a float tensor N x C x H x W, normalised
                  as the model expects, or batches of them (labels are ignored)
    kept_outputs  {layer name: original indices of its remaining output channels}
                  (PruneResult.kept_outputs); layers missing here are found by matching weights
    count         use the first `count` images (an error if fewer are given)
    max_rows      sampled positions per layer, over all images (bounds each solve)
    ridge         regularisation toward the pruned weights, relative to the mean
                  diagonal of X'X (0: plain least squares), or "auto": chosen per layer
                  by two-fold cross-validation over the images (solve.RIDGE_GRID)
    batch_size    images per forward pass of the unpruned model
    memory_mb     bound on the activations in flight and the targets held (sets the wave size;
                  more images than one wave holds are taken in several: see above)
    eval_images   held-out images for the logit errors (default: the last wave's first 256
                  calibration images, which cost no extra pass of the rebuilt model)
    layers        rebuild exactly these layers (default: every conv/linear from the first change on)
    residual      a layer that feeds a residual addition alone is solved for the sum
                  (it cancels the skip connection's error); False: for its own output
    relu_steps    re-solves of a layer that a ReLU follows, each asking negative targets
                  only for "at or below zero" (0: plain least squares on every row)
    max_inputs    a layer with more inputs per output is left as pruned and named
                  (layers.MAX_INPUTS: memory and time of its normal equations)
    align_bn      afterwards, make each BatchNorm's running statistics the measured ones
                  (its scale and shift compensate: eval outputs unchanged), so that
                  training-mode BatchNorm, and recalibration, start from the rebuilt
                  network (batchnorm.py)
    """
    if count is not None:
        _check("count", count, 1)
    _check("max_rows", max_rows, 1)
    _check("batch_size", batch_size, 1)
    _check("memory_mb", memory_mb, 1)
    if ridge != "auto" and (not isinstance(ridge, (int, float)) or isinstance(ridge, bool) or not ridge >= 0
                            or not math.isfinite(ridge)):
        raise EdgepruneError(f"reconstruct: ridge must be \"auto\" or a number >= 0, got {ridge!r}")
    _check("relu_steps", relu_steps, 0)
    _check("max_inputs", max_inputs, 1)
    start = time.perf_counter()
    meter = PeakMemory.start(_device(pruned))
    x = collect_images(images, count)
    held_out = eval_images is not None
    was = unpruned.training, pruned.training
    unpruned.eval()
    pruned.eval()
    try:
        with torch.no_grad():
            device = _device(pruned)
            p_plan = plan(unpruned, pruned, x[:1].to(device), kept_outputs, layers, max_inputs)
            per = max(1, math.ceil(max_rows / len(x)))
            wave = _wave_size(p_plan, per, memory_mb)
            batch_size = min(batch_size, wave)
            starts = list(range(0, len(x), wave))
            # the logit errors: on held-out images, or on the last wave's first ones, whose
            # unpruned and rebuilt logits that wave computes anyway
            x_eval = collect_images(eval_images) if held_out else x[starts[-1]:starts[-1] + EVAL_IMAGES]
            before = _logits(pruned, x_eval, batch_size)
            u_mods, p_mods = dict(unpruned.named_modules()), dict(pruned.named_modules())
            states = {l.name: LayerState(l, u_mods, p_mods, device, residual, relu_steps) for l in p_plan.layers}
            skipped = dict(p_plan.skipped)
            for i, w0 in enumerate(starts):
                u_out, p_out = run_wave(unpruned, pruned, x[w0:w0 + wave], states, skipped, per, ridge, batch_size,
                                        seed + i, first=i == 0, last=i == len(starts) - 1)
            if align_bn:
                align_batchnorm(pruned, x[:ALIGN_IMAGES], batch_size)
            if held_out or u_out is None or p_out is None:
                reference, after = _logits(unpruned, x_eval, batch_size), _logits(pruned, x_eval, batch_size)
            else:
                reference, after = u_out[:len(x_eval)].double(), p_out[:len(x_eval)].double()
            error_before, error_after = _relative_error(before, reference), _relative_error(after, reference)
    finally:
        unpruned.train(was[0])
        pruned.eval()
    for name, state in states.items():
        if name not in skipped and state.ridge is None:
            skipped[name] = "not reached by the calibration images' forward pass"
    rebuilt = [n for n in states if n not in skipped]
    return ReconstructReport(
        rebuilt=rebuilt, skipped=skipped, seconds=time.perf_counter() - start, images=len(x), waves=len(starts),
        rows={n: states[n].rows for n in rebuilt}, ridges={n: states[n].ridge for n in rebuilt},
        logit_error_before=error_before, logit_error_after=error_after,
        error_images=len(x_eval), error_on="held-out" if held_out else "calibration",
        peak_memory_mb=meter.stop(),
        settings={"max_rows": max_rows, "ridge": ridge, "memory_mb": memory_mb, "residual": residual,
                  "relu_steps": relu_steps, "seed": seed, "align_bn": align_bn})


def _wave_size(p_plan, per_image: int, memory_mb: int) -> int:
    """Images per wave within `memory_mb`, less the normal equations (float64, two folds
    until the ridge is chosen): each image of a wave is in flight at once (about 4 of
    the largest activation, float32) and leaves `per_image` target rows for every
    layer until that layer is solved."""
    equations = sum(16 * l.groups * (l.pruned.weight[0].numel() + 1) ** 2 for l in p_plan.layers)
    activations = 4 * 4 * p_plan.largest
    targets = 4 * per_image * sum(int(l.keep.numel()) for l in p_plan.layers)
    room = max(memory_mb * 2 ** 20 - equations, memory_mb * 2 ** 20 // 4)     # a quarter for the waves at least
    return max(1, int(room // max(activations + targets, 1)))


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int) -> Optional[torch.Tensor]:
    device = _device(model)
    if len(x) == 0:
        return None
    outs = [model(_fast(x[i:i + batch_size].to(device))) for i in range(0, len(x), batch_size)]
    return torch.cat(outs).double() if all(isinstance(o, torch.Tensor) for o in outs) else None


def _relative_error(p: Optional[torch.Tensor], u: Optional[torch.Tensor]) -> Optional[float]:
    """|p - u| / |u| over all logits (Frobenius norms)."""
    if p is None or u is None or p.shape != u.shape or not float(u.norm()) > 0:
        return None
    return float((p - u).norm() / u.norm())
