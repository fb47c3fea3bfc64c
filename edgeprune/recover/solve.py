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

from typing import Optional, Union

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

    def add_inputs(self, x: torch.Tensor, split: int) -> None:
        """x: (groups, rows, inputs); rows before `split` are fold 0, the rest fold 1."""
        for f, (lo, hi) in enumerate(((0, split), (split, x.shape[1]))):
            self.xx[f] += _products(x, x, lo, hi)
            self.sx[f] += x[:, lo:hi].float().sum(1).double()
            self.n[f] += hi - lo

    def targets(self, x: torch.Tensor, y: torch.Tensor, split: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(X'Y, sum Y) per fold of rows not yet committed; y: (groups, rows, outputs)."""
        xy = torch.stack([_products(x, y, 0, split), _products(x, y, split, x.shape[1])])
        sy = torch.stack([y[:, :split].sum(1), y[:, split:].sum(1)]).double()
        return xy, sy

    def commit(self, pending: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.xy += pending[0]
        self.sy += pending[1]

    def predict(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x @ w (+ bias), in x's precision."""
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

    def _choose(self, w0: torch.Tensor, pending) -> float:
        """The RIDGE_GRID value with the least held-out error, fitting on one fold and
        scoring on the other, both ways."""
        if (self.n == 0).any():
            return RIDGE_GRID[1]
        errors = torch.zeros(len(RIDGE_GRID), dtype=torch.float64, device=self.xx.device)
        for fit, held in ((0, 1), (1, 0)):
            xx, xy, sx, sy, n = self._centred([fit], pending)
            scale = xx.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-12)
            vals, vecs = torch.linalg.eigh(xx)
            vt_xy, vt_w0 = vecs.transpose(1, 2) @ xy, vecs.transpose(1, 2) @ w0
            hxx, hsx, hn = self.xx[held], self.sx[held], self.n[held]
            hxy, hsy = (self.xy + pending[0])[held], (self.sy + pending[1])[held]
            for i, r in enumerate(RIDGE_GRID):
                lam = (r * scale)[:, None]
                w = vecs @ ((vt_xy + lam[:, :, None] * vt_w0) / (vals + lam)[:, :, None])
                wb = self._bias(w, sx, sy, n)
                errors[i] += self._held_error(wb, hxx, hsx, hxy, hsy, hn)
        finite = torch.isfinite(errors)
        return RIDGE_GRID[int(torch.where(finite, errors, torch.inf).argmin())] if finite.any() else RIDGE_GRID[-1]

    def _held_error(self, wb, xx, sx, xy, sy, n) -> torch.Tensor:
        """sum over held-out rows of |x w + b - y|^2, less the constant sum |y|^2."""
        k = xx.shape[1]
        w = wb[:, :k]
        e = (w * (xx @ w)).sum() - 2 * (w * xy).sum()
        if self.bias:
            b = wb[:, k]
            e = e + 2 * (b * (sx[:, None, :] @ w)[:, 0]).sum() + n * (b * b).sum() - 2 * (b * sy).sum()
        return e

    def solve(self, w0: torch.Tensor, ridge: Union[float, str], pending) -> tuple[torch.Tensor, float]:
        """(weights (groups, inputs [+ 1 bias], outputs), the ridge used); w0 in the same
        layout. Raises FloatingPointError when no finite answer exists."""
        w0 = w0.to(torch.float64)
        k = self.xx.shape[2]
        if not all(torch.isfinite(t).all() for t in (self.xx, self.sx, pending[0], pending[1])):
            raise FloatingPointError("non-finite activations")
        if ridge == "auto":     # rows enough to pin every weight down: the smallest ridge on the grid
            ridge = self._choose(w0[:, :k], pending) if self.n.sum() < AUTO_ROWS_PER_INPUT * k else RIDGE_GRID[0]
        xx, xy, sx, sy, n = self._centred([0, 1], pending)
        scale = xx.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-12)
        lam = (ridge * scale)[:, None]
        eye = torch.eye(k, dtype=torch.float64, device=xx.device)
        for _ in range(8):        # a singular system gets more regularisation until it factorises
            a = xx + lam[:, :, None] * eye
            b = xy + lam[:, :, None] * w0[:, :k]
            chol, info = torch.linalg.cholesky_ex(a)
            if int(info.max()) == 0:
                w = torch.cholesky_solve(b, chol)
                if torch.isfinite(w).all():
                    return self._bias(w, sx, sy, n), float(ridge)
            lam = torch.where(lam > 0, lam * 10, scale[:, None] * 1e-6)
        w = torch.linalg.lstsq(a, b, driver="gelsd" if a.device.type == "cpu" else None).solution
        if not torch.isfinite(w).all():
            raise FloatingPointError("the regularised system has no finite solution")
        return self._bias(w, sx, sy, n), float(ridge)
