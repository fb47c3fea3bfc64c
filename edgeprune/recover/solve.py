"""The ridge least-squares solve of one layer (per group), from normal equations.

For each group, with X the sampled inputs (rows: positions; columns: the inputs
one output reads), Y the targets, b the bias and W0 the layer's present (pruned)
weights:

    minimise  |X W + 1 b' - Y|^2 + lam |W - W0|^2        (the bias is not penalised)

The regulariser pulls toward the pruned weights, not toward zero: a direction the
samples do not determine keeps its pruned value, a singular system is still well
posed, and a layer whose pruned weights already reproduce the target is returned
unchanged (rebuilding an unpruned model is exact). lam = ridge x the mean
diagonal of the centred X'X, so the setting does not depend on the activations'
scale. With ridge "auto", it is chosen per layer from RIDGE_GRID by two-fold
cross-validation over the images (the first half of each wave against the second),
from the same statistics: where the rows do not pin the weights down (few
images, wide layers) it grows, and at its largest it leaves the pruned weights
nearly as they are. Layers with at least AUTO_ROWS_PER_INPUT rows per input are
well determined (the ridge hardly matters there: measured on ResNet-56) and take
the grid's smallest value without the cross-validation's cost.

The bias is solved by centring (the unpenalised intercept), so all statistics are
sums: X'X, X'Y, sum X, sum Y and the row count, accumulated in float64 per fold
(each chunk of CHUNK rows multiplied in float32), solved in float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
AUTO_ROWS_PER_INPUT = 32        # "auto" cross-validates only layers with fewer rows than this per input


CHUNK = 4096        # rows per float32 product; the sums over chunks are float64


def _products(a: torch.Tensor, b: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """sum over rows lo..hi of a' b, float64; each chunk's product in float32 (twice as
    fast, and its rounding, ~1e-6 relative, is far below the sampling noise of the rows)."""
    out = torch.zeros(a.shape[0], a.shape[2], b.shape[2], dtype=torch.float64, device=a.device)
    a, b = a.float(), b.float()
    for i in range(lo, hi, CHUNK):
        j = min(i + CHUNK, hi)
        out += (a[:, i:j].transpose(1, 2) @ b[:, i:j]).double()
    return out


class NormalEquations:
    """Sums over rows, per fold (two halves of the images), for `groups` independent
    systems. X'Y and sum Y are committed separately: a ReLU-aware solve revises
    its targets before they count."""

    def __init__(self, groups: int, inputs: int, outputs: int, bias: bool, device=None):
        f64 = dict(dtype=torch.float64, device=device)
        self.bias = bias
        self.xx = torch.zeros(2, groups, inputs, inputs, **f64)
        self.sx = torch.zeros(2, groups, inputs, **f64)
        self.xy = torch.zeros(2, groups, inputs, outputs, **f64)
        self.sy = torch.zeros(2, groups, outputs, **f64)
        self.n = torch.zeros(2, **f64)

    @property
    def rows(self) -> int:
        return int(self.n.sum())

    def merge_folds(self, pending):
        """Once the ridge is chosen the folds are one: half the memory from here on.
        Returns `pending` merged alike."""
        if self.xx.shape[0] == 2:
            self.xx, self.sx = self.xx.sum(0, keepdim=True), self.sx.sum(0, keepdim=True)
            self.xy, self.sy, self.n = self.xy.sum(0, keepdim=True), self.sy.sum(0, keepdim=True), self.n.sum(0, True)
        return tuple(p.sum(0, keepdim=True) for p in pending) if pending[0].shape[0] == 2 else pending

    def add_inputs(self, x: torch.Tensor, split: int) -> None:
        """x: (groups, rows, inputs); rows before `split` are fold 0, the rest fold 1 (one
        fold for all once merged)."""
        if self.xx.shape[0] == 1:
            split = x.shape[1]
        for f, (lo, hi) in list(enumerate(((0, split), (split, x.shape[1]))))[:self.xx.shape[0]]:
            self.xx[f] += _products(x, x, lo, hi)
            self.sx[f] += x[:, lo:hi].float().sum(1).double()
            self.n[f] += hi - lo

    def targets(self, x: torch.Tensor, y: torch.Tensor, split: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(X'Y, sum Y) per fold of rows not yet committed; y: (groups, rows, outputs)."""
        if self.xx.shape[0] == 1:
            return _products(x, y, 0, x.shape[1])[None], y.sum(1)[None].double()
        xy = torch.stack([_products(x, y, 0, split), _products(x, y, split, x.shape[1])])
        sy = torch.stack([y[:, :split].sum(1), y[:, split:].sum(1)]).double()
        return xy, sy

    def commit(self, pending: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.xy += pending[0]
        self.sy += pending[1]

    def predict(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x @ w (+ bias), in x's precision (float32)."""
        n = x.shape[2]
        w = w.to(x.dtype)
        out = x @ w[:, :n]
        return out + w[:, n:n + 1] if self.bias else out

    # -- solving ----------------------------------------------------------------------------------------
    def _centred(self, folds, pending):
        xx, sx, n = self.xx[folds].sum(0), self.sx[folds].sum(0), self.n[folds].sum()
        xy, sy = (self.xy + pending[0])[folds].sum(0), (self.sy + pending[1])[folds].sum(0)
        if self.bias and n > 0:
            xx = xx - sx[:, :, None] * sx[:, None, :] / n
            xy = xy - sx[:, :, None] * sy[:, None, :] / n
        return xx, xy, sx, sy, n

    def _bias(self, w, sx, sy, n):
        if not self.bias:
            return w
        b = (sy - (sx[:, None, :] @ w)[:, 0]) / n.clamp(min=1)
        return torch.cat([w, b[:, None, :]], 1)

    def choose_ridge(self, w0: torch.Tensor, pending) -> float:
        """The RIDGE_GRID value with the least held-out error (fit on one fold, score on the
        other, both ways), walking downhill on the grid from its middle.
        Layers with AUTO_ROWS_PER_INPUT rows per input or more take the smallest directly."""
        k = self.xx.shape[2]
        if self.n.numel() < 2 or (self.n == 0).any():
            return RIDGE_GRID[1]
        if self.n.sum() >= AUTO_ROWS_PER_INPUT * k:
            return RIDGE_GRID[0]
        w0 = w0[:, :k].to(torch.float64)
        folds = []
        for fit, held in ((0, 1), (1, 0)):
            xx, xy, sx, sy, n = self._centred([fit], pending)
            folds.append((xx, xy, sx, sy, n, self.xx[held], self.sx[held], (self.xy + pending[0])[held],
                          (self.sy + pending[1])[held], self.n[held]))
        def error_at(r: float) -> float:
            """Held-out error at ridge r; the fits in float32 (only their ranking matters,
            and it halves the cost), the scores in float64."""
            total = 0.0
            for xx, xy, sx, sy, n, hxx, hsx, hxy, hsy, hn in folds:
                lam = (r * xx.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-12))[:, None, None]
                a = (xx + lam * torch.eye(k, dtype=xx.dtype, device=xx.device)).float()
                chol, info = torch.linalg.cholesky_ex(a)
                if int(info.max()) != 0:
                    return float("inf")
                w = torch.cholesky_solve((xy + lam * w0).float(), chol).double()
                total += float(self._held_error(self._bias(w, sx, sy, n), hxx, hsx, hxy, hsy, hn))
            return total if total == total else float("inf")

        # start in the middle of the grid and walk downhill: usually three values, not six
        i = len(RIDGE_GRID) // 2
        errors = {i: error_at(RIDGE_GRID[i]), i - 1: error_at(RIDGE_GRID[i - 1])}
        step = -1 if errors[i - 1] <= errors[i] else 1
        j = i - 1 if step < 0 else i
        while 0 <= j + step < len(RIDGE_GRID):
            errors[j + step] = error_at(RIDGE_GRID[j + step])
            if errors[j + step] >= errors[j]:
                break
            j += step
        best = min(errors, key=lambda t: (errors[t], -t))
        return RIDGE_GRID[best] if errors[best] < float("inf") else RIDGE_GRID[-1]

    def _held_error(self, wb, xx, sx, xy, sy, n) -> torch.Tensor:
        """sum over held-out rows of |x w + b - y|^2, less the constant sum |y|^2."""
        k = xx.shape[1]
        w = wb[:, :k]
        e = (w * (xx @ w)).sum() - 2 * (w * xy).sum()
        if self.bias:
            b = wb[:, k]
            e = e + 2 * (b * (sx[:, None, :] @ w)[:, 0]).sum() + n * (b * b).sum() - 2 * (b * sy).sum()
        return e

    def factorise(self, ridge: float) -> "Factor":
        """The regularised system of all rows so far, factorised once for any targets.
        Raises FloatingPointError when the inputs were not finite."""
        if not (torch.isfinite(self.xx).all() and torch.isfinite(self.sx).all()):
            raise FloatingPointError("non-finite activations")
        xx, sx, n = self.xx.sum(0), self.sx.sum(0), self.n.sum()
        if self.bias and n > 0:
            xx = xx - sx[:, :, None] * sx[:, None, :] / n
        k = xx.shape[1]
        scale = xx.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-12)
        lam = (ridge * scale)[:, None, None]
        eye = torch.eye(k, dtype=torch.float64, device=xx.device)
        for _ in range(8):        # a singular system gets more regularisation until it factorises
            chol, info = torch.linalg.cholesky_ex(xx + lam * eye)
            if int(info.max()) == 0:
                return Factor(chol, None, lam, sx, n, float(ridge))
            lam = torch.where(lam > 0, lam * 10, scale[:, None, None] * 1e-6)
        return Factor(None, xx + lam * eye, lam, sx, n, float(ridge))

    def solve(self, factor: "Factor", w0: torch.Tensor, pending) -> torch.Tensor:
        """The weights (groups, inputs [+ 1 bias], outputs) for the committed rows and
        `pending`'s targets; w0 in the same layout. Raises FloatingPointError when no
        finite answer exists."""
        if not (torch.isfinite(pending[0]).all() and torch.isfinite(pending[1]).all()):
            raise FloatingPointError("non-finite activations")
        k = self.xx.shape[2]
        xy, sy, n = (self.xy + pending[0]).sum(0), (self.sy + pending[1]).sum(0), factor.n
        if self.bias and n > 0:
            xy = xy - factor.sx[:, :, None] * sy[:, None, :] / n
        b = xy + factor.lam * w0[:, :k].to(torch.float64)
        if factor.chol is not None:
            w = torch.cholesky_solve(b, factor.chol)
        else:
            w = torch.linalg.lstsq(factor.matrix, b, driver="gelsd" if b.device.type == "cpu" else None).solution
        if not torch.isfinite(w).all():
            raise FloatingPointError("the regularised system has no finite solution")
        return self._bias(w, factor.sx, sy, n)


@dataclass
class Factor:
    chol: Optional[torch.Tensor]          # Cholesky factor of X'X + lam I (centred), or None:
    matrix: Optional[torch.Tensor]        # ... the matrix itself, solved by least squares
    lam: torch.Tensor
    sx: torch.Tensor
    n: torch.Tensor
    ridge: float
