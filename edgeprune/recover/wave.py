"""One wave of calibration images: the unpruned model records its targets, then the
pruned model runs once and each layer is solved in front of itself (or, with
residual compensation, at the addition it feeds) before its output is used."""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn as nn

from .layers import Layer
from .residual import SumHook, recompute
from .rows import input_rows, output_rows, positions, positions_in
from .solve import NormalEquations


def _norm_affine(bn: nn.Module, keep: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, c) with bn(y) = a * y + c per channel, in eval mode, float64."""
    var, mean = bn.running_var.double(), bn.running_mean.double()
    a = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        a = a * bn.weight.double()
    c = -mean * a + (bn.bias.double() if bn.bias is not None else 0.0)
    if keep is not None:
        a, c = a[keep], c[keep]
    return a, c


class LayerState:
    """One layer's normal equations, its targets' mapping, and how its solution
    becomes parameters.

    Targets are handled in the "output space": after the folded BatchNorm (if any) and
    the residual addition (if compensated), where a ReLU may follow. The solve itself
    is in the layer's own output space, through the pruned BatchNorm's inverse."""

    def __init__(self, layer: Layer, u_mods: dict, p_mods: dict, device, residual: bool, relu_steps: int):
        self.layer = layer
        self.residual = residual and layer.sum_index is not None
        self.relu_steps = relu_steps if layer.relu and (self.residual or layer.sum_index is None) else 0
        p = layer.pruned
        self.bn_p = p_mods[layer.norm] if layer.norm else None
        self.bias = p.bias is not None or (self.bn_p is not None and self.bn_p.running_mean is not None)
        self.out = p.weight.shape[0]
        self.d = p.weight[0].numel()
        self.eq = NormalEquations(layer.groups, self.d, self.out // layer.groups, self.bias, device)
        self.keep = layer.keep.to(device)
        one = torch.ones(self.out, dtype=torch.float64, device=device)
        self.u_affine = self.p_affine = (one, one * 0)
        if self.bn_p is not None:
            a_u, c_u = _norm_affine(u_mods[layer.norm], self.keep)
            a_p, c_p = _norm_affine(self.bn_p)
            dead = a_p.abs() <= 1e-12 * a_p.abs().max().clamp(min=1e-30)     # outputs that ignore the input
            self.u_affine, self.p_affine = (a_u, c_u), (torch.where(dead, a_u, a_p), torch.where(dead, c_u, c_p))
            self.mean0 = self.bn_p.running_mean.detach().clone()
        self.w0 = self._current()
        self.ridge = None                    # the ridge of the last solve (None: not solved yet)
        self.w, self.rows = None, 0          # the last solution, and the rows it was solved from

    def _current(self) -> torch.Tensor:
        p, g = self.layer.pruned, self.layer.groups
        w = p.weight.detach().reshape(g, self.out // g, self.d).transpose(1, 2).double()
        if self.bias:
            b = p.bias.detach().double() if p.bias is not None else w.new_zeros(self.out)
            w = torch.cat([w, b.reshape(g, 1, self.out // g)], 1)
        return w

    def unpruned_output(self, y: torch.Tensor) -> torch.Tensor:
        """The unpruned layer's own output rows, taken to the output space (float32, as
        the rows: targets are the largest arrays held)."""
        a, c = self.u_affine
        return y.float() * a.float() + c.float()

    def fit(self, rows: torch.Tensor, wanted: torch.Tensor, skip: Optional[torch.Tensor], split: int,
            ridge, solve: bool, final: bool) -> bool:
        """Add the rows (inputs) and their targets `wanted` (output space: after the
        BatchNorm; the sum where `skip` is added) to the normal equations; with `solve`,
        solve and write the weights (True when written). Rows before `split` are the first
        cross-validation fold. `final`: no rows follow, the statistics are freed."""
        g = self.layer.groups
        a, c = (t.float() for t in self.p_affine)
        wanted = wanted.float()
        offset = skip.float() if skip is not None else 0.0

        def grouped(t):
            return t.reshape(t.shape[0], g, -1).transpose(0, 1)

        def relu_target(w):
            """a negative target is met by anything at or below zero: ask for no more than that"""
            made = self.eq.predict(x, w).transpose(0, 1).reshape(-1, self.out) * a + c + offset
            return torch.where(wanted > 0, wanted, made.clamp(max=0.0))

        x = grouped(rows)
        self.eq.add_inputs(x, split)
        pending = self.eq.targets(x, grouped((wanted - offset - c) / a), split)
        if not solve:       # a middle wave: its rows count, the weights stay until the last wave
            if self.relu_steps and self.w is not None:
                pending = self.eq.targets(x, grouped((relu_target(self.w) - offset - c) / a), split)
            self.eq.commit(pending)
            return False
        if ridge == "auto":         # chosen once per layer, on the first wave's rows
            ridge = self.ridge if self.ridge is not None else self.eq.choose_ridge(self.w0, pending)
        pending = self.eq.merge_folds(pending)
        factor = self.eq.factorise(ridge)
        for step in range(self.relu_steps + 1):
            w = self.eq.solve(factor, self.w0, pending)
            if step == self.relu_steps:
                break
            pending = self.eq.targets(x, grouped((relu_target(w) - offset - c) / a), split)
        self.eq.commit(pending)
        self.ridge, self.w, self.rows = ridge, w, self.eq.rows
        if final:
            self.eq = None
        self._write(w)
        return True

    @torch.no_grad()
    def _write(self, w: torch.Tensor) -> None:
        p = self.layer.pruned
        p.weight.copy_(w[:, :self.d, :].transpose(1, 2).reshape(p.weight.shape).to(p.weight.dtype))
        if self.bias:
            b = w[:, self.d, :].reshape(self.out)
            if p.bias is not None:
                p.bias.copy_(b.to(p.bias.dtype))
            else:       # bn(W x + b) is bn with running_mean - b applied to W x
                self.bn_p.running_mean.copy_((self.mean0.double() - b).to(self.mean0.dtype))


def _fast(x: torch.Tensor) -> torch.Tensor:
    """Images in channels-last layout: convolutions run faster on CPUs (x1.3 on ResNet-56)
    and the rows are gathered without copies; the models are not changed."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def run_wave(unpruned: nn.Module, pruned: nn.Module, x: torch.Tensor, states: dict[str, LayerState],
             skipped: dict[str, str], per_image: int, ridge, batch_size: int, seed: int, first: bool,
             last: bool) -> tuple:
    """Returns both models' outputs on the wave: with `last`, the pruned model's are the
    rebuilt model's (each layer is solved before it runs), so they give the logit error
    without another pass."""
    """One wave. Layers are solved in the first wave (so that the rest see rebuilt
    inputs) and the last (from every wave's rows); a middle wave only adds rows, which
    saves a factorisation per layer and wave. The first half of the wave's images is
    one cross-validation fold, the rest the other."""
    solving = first or last
    device = next(pruned.parameters()).device
    n = len(x)
    half = (n + 1) // 2
    u_mods, p_mods = dict(unpruned.named_modules()), dict(pruned.named_modules())
    pos: dict[str, torch.Tensor] = {}
    targets: dict[str, list[torch.Tensor]] = {name: [] for name in states}
    chunk = [0, 0]
    pending: dict[str, dict] = {}              # residual layers waiting for their addition
    sums = {s.layer.sum_index: name for name, s in states.items() if s.residual}
    order = {name: i for i, name in enumerate(states)}
    u_mode, p_mode = SumHook(sums, lambda *a: record_sum(*a)), SumHook(sums, lambda *a: solve_sum(*a))

    def record(name):
        state = states[name]

        def hook(m, args, out):
            with u_mode.pause():
                if name not in pos:
                    gen = torch.Generator().manual_seed(seed * 100_003 + order[name])
                    pos[name] = positions(n, per_image, positions_in(m, out.shape), gen)
                if not state.residual:
                    targets[name].append(output_rows(m, out, pos[name][chunk[0]:chunk[1]])[:, state.keep])
        return hook

    def record_sum(name, out, a, b):
        state = states[name]
        targets[name].append(output_rows(state.layer.unpruned, out, pos[name][chunk[0]:chunk[1]])[:, state.keep])

    def solve(name):
        state = states[name]

        def hook(m, args):
            if name in skipped or name not in pos:
                return
            with p_mode.pause():
                rows = input_rows(m, args[0], pos[name])
                if state.residual:
                    pending[name] = {"rows": rows, "input": args[0]}
                    return
                try:
                    state.fit(rows, state.unpruned_output(torch.cat(targets.pop(name))), None,
                              half * pos[name].shape[1], ridge, solving, last)
                except (FloatingPointError, RuntimeError) as e:
                    skipped[name] = f"solve failed: {e}"
        return hook

    def output_of(name):
        def hook(m, args, out):
            if name in pending:
                pending[name]["output"] = out
        return hook

    def solve_sum(name, out, a, b):
        state, wait = states[name], pending.pop(name, None)
        if wait is None or "output" not in wait or name in skipped:
            return None
        y = wait["output"]
        skip = b if a is y else a if b is y else None
        if skip is None:
            skipped[name] = "its addition was not reached as in the probe pass"
            return None
        layer = state.layer
        try:
            written = state.fit(wait["rows"], torch.cat(targets.pop(name)),
                                output_rows(layer.pruned, skip, pos[name]), half * pos[name].shape[1], ridge, solving,
                                last)
        except (FloatingPointError, RuntimeError) as e:
            skipped[name] = f"solve failed: {e}"
            return None
        return recompute(layer.pruned, state.bn_p, wait["input"]) + skip if written else None

    handles, u_out, p_out = [], [], None
    try:
        handles = [u_mods[name].register_forward_hook(record(name)) for name in states]
        with u_mode if sums else contextlib.nullcontext():
            for i in range(0, n, batch_size):
                chunk[:] = [i, min(i + batch_size, n)]
                u_mode.count = 0                   # additions are counted per forward pass
                u_out.append(unpruned(_fast(x[i:i + batch_size].to(device))))
        for h in handles:
            h.remove()
        chunk[:] = [0, n]
        handles = [p_mods[name].register_forward_pre_hook(solve(name)) for name in states]
        for name, state in states.items():
            if state.residual:
                end = state.layer.norm or name
                handles.append(p_mods[end].register_forward_hook(output_of(name)))
        with p_mode if sums else contextlib.nullcontext():
            p_out = pruned(_fast(x.to(device)))
    finally:
        for h in handles:
            h.remove()
    for name in pending:
        skipped[name] = "its addition was not reached as in the probe pass"
    u_out = torch.cat(u_out) if all(isinstance(o, torch.Tensor) for o in u_out) else None
    return u_out, p_out if isinstance(p_out, torch.Tensor) else None
