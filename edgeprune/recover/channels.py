"""Which original channels a pruned layer kept.

Torch-Pruning keeps a layer's name and the order of its remaining channels, so a
pruned weight is the unpruned one with rows (outputs) and columns (inputs) cut
out. Pruning reports the kept indices (PruneResult.kept_outputs); when only the
two models are at hand they are found here by matching weight values, and checked.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn


def _as_rows(w: torch.Tensor) -> torch.Tensor:
    """(outputs, inputs per group, rest) view of a conv or linear weight."""
    return w.detach().reshape(w.shape[0], w.shape[1], -1).float()


def derive_kept_outputs(unpruned: nn.Module, pruned: nn.Module) -> Optional[torch.Tensor]:
    """Original indices of `pruned`'s output channels, or None when the weights do
    not show them (the pruned layer was trained or rebuilt since).

    Each pruned weight entry (a k x k kernel, or one value for 1x1 and linear) is
    looked up among the unpruned entries; each pruned row then votes for the
    unpruned row that holds most of its entries. The answer is kept only if the
    pruned weight is exactly the unpruned one restricted to those rows and the
    columns that the same vote finds."""
    wu, wp = _as_rows(unpruned.weight), _as_rows(pruned.weight)
    (co, ci, k), (po, pi, pk) = wu.shape, wp.shape
    if k != pk or po > co or pi > ci:
        return None
    if (co, ci) == (po, pi):
        return torch.arange(co) if torch.equal(wu, wp) else None
    keys_u = wu.reshape(co * ci, k)
    keys_p = wp.reshape(po * pi, k)
    # sort the unpruned entries lexicographically by their values (one value per entry when k == 1)
    order = torch.arange(co * ci)
    for j in reversed(range(k)):
        order = order[torch.sort(keys_u[order, j], stable=True).indices]
    sorted_u = keys_u[order]
    first = sorted_u[:, 0].contiguous()
    pos = torch.searchsorted(first, keys_p[:, 0].contiguous()).clamp(max=co * ci - 1)
    hit = (sorted_u[pos] == keys_p).all(1)
    src = order[pos]                                     # flat unpruned index of each pruned entry (if hit)
    rows_u, cols_u = src // ci, src % ci
    rows_p = torch.arange(po).repeat_interleave(pi)
    cols_p = torch.arange(pi).repeat(po)
    out = _vote(rows_p[hit], rows_u[hit], po, co)
    cols = _vote(cols_p[hit], cols_u[hit], pi, ci)
    if out is None or cols is None:
        return None
    if not torch.equal(wu[out][:, cols], wp):
        return None
    return out


def _vote(keys: torch.Tensor, values: torch.Tensor, n: int, m: int) -> Optional[torch.Tensor]:
    """For each key 0..n-1 the most frequent value; None if some key got no vote."""
    if keys.numel() == 0:
        return None
    counts = torch.zeros(n, m, dtype=torch.long)
    counts.index_put_((keys, values), torch.ones_like(keys), accumulate=True)
    best = counts.argmax(1)
    if (counts.gather(1, best[:, None]) == 0).any():
        return None
    return best


def compose_kept(first: dict[str, list[int]], second: dict[str, list[int]]) -> dict[str, list[int]]:
    """Kept output indices against the original for a model pruned twice (a cascade
    link): `first` against the original, `second` against the once-pruned model."""
    names = set(first) | set(second)
    composed = {}
    for name in names:
        if name in first and name in second:
            composed[name] = [first[name][i] for i in second[name]]
        else:
            composed[name] = list(first.get(name, second.get(name)))
    return composed
