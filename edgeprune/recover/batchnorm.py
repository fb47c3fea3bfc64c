"""After rebuilding: each BatchNorm's running statistics made the true statistics of
what reaches it, with its scale and shift changed so that the model's eval-mode
function stays exactly as rebuilt.

Why: the rebuild folds its solved biases into BatchNorm running means and solves
against the pruned model's running variances, so those statistics no longer describe
the activations. Eval mode does not care, but training-mode BatchNorm normalises with
each batch's own statistics: fine-tuning a rebuilt model started from a different
network than the one measured (ResNet-56 l1 at 0.6: 61.0 % rebuilt, 24.7 % after 40
SGD steps), and BatchNorm recalibration, which re-estimates the statistics, undid the
rebuild. With the statistics aligned, the training-mode network is the rebuilt one.

For running mean m0, variance v0, weight g, bias b, and measured mean m and variance v
of the BatchNorm's input over the calibration images (eval mode):

    g (x - m0) / sqrt(v0 + e) + b  ==  g' (x - m) / sqrt(v + e) + b'
    with  g' = g sqrt(v + e) / sqrt(v0 + e),   b' = b + g (m - m0) / sqrt(v0 + e)
"""
from __future__ import annotations

import torch
import torch.nn as nn


def align_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> list[str]:
    """Align every affine, tracking BatchNorm of `model` (in place; eval outputs
    unchanged up to rounding); returns their names. One eval-mode pass over `images`."""
    norms = {n: m for n, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and m.track_running_stats
             and m.running_mean is not None}
    if not norms or len(images) == 0:
        return []
    sums: dict[str, list] = {n: [0, 0.0, 0.0] for n in norms}

    def hook(name):
        def record(module, inputs):
            x = inputs[0].detach().double().transpose(0, 1).reshape(inputs[0].shape[1], -1)
            s = sums[name]
            s[0] += x.shape[1]
            s[1] = s[1] + x.sum(1)
            s[2] = s[2] + (x * x).sum(1)
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in norms.items()]
    was = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                model(images[i:i + batch_size].to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    aligned = []
    with torch.no_grad():
        for name, bn in norms.items():
            count, total, squares = sums[name]
            if not count:
                continue                      # not reached: left as it is
            mean = total / count
            var = (squares / count - mean * mean).clamp_min(0)
            m0, v0 = bn.running_mean.double(), bn.running_var.double()
            old_std, new_std = (v0 + bn.eps).sqrt(), (var + bn.eps).sqrt()
            g, b = bn.weight.double(), bn.bias.double()
            bn.bias.copy_((b + g * (mean - m0) / old_std).to(bn.bias.dtype))
            bn.weight.copy_((g * new_std / old_std).to(bn.weight.dtype))
            bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
            bn.running_var.copy_(var.to(bn.running_var.dtype))
            aligned.append(name)
    return aligned
