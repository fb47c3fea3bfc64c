"""Pareto fronts: the trials no other trial beats on both cost and accuracy."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def pareto_mask(costs: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """True for each point on the front of (cost to minimise, value to maximise).

    A point is on the front when no other point has a cost <= and a value >=
    with at least one strictly better. Identical points are all kept; points with
    a NaN cost or value are never on it.
    """
    c = np.asarray(costs, dtype=float)
    v = np.asarray(values, dtype=float)
    if c.shape != v.shape:
        raise ValueError(f"costs and values differ in length: {c.shape} vs {v.shape}")
    mask = np.zeros(c.shape, dtype=bool)
    ok = ~(np.isnan(c) | np.isnan(v))
    idx = np.flatnonzero(ok)
    # cheapest first; among equal costs the best value first
    order = idx[np.lexsort((-v[idx], c[idx]))]
    best = -math.inf          # best value among strictly cheaper points
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and c[order[j]] == c[order[i]]:
            j += 1
        group = order[i:j]
        top = v[group[0]]     # the group's best value (sorted first)
        if top > best:
            mask[group[v[group] == top]] = True
            best = top
        i = j
    return mask


def pareto_front(df, cost: str, value: str = "accuracy", by: str | None = None):
    """The rows of `df` on the front of (`cost` to minimise, `value` to maximise),
    cheapest first; computed separately within each `by` group when given."""
    import pandas as pd
    if df.empty:
        return df
    groups = [g for _, g in df.groupby(by, sort=False)] if by else [df]
    parts = [g[pareto_mask(g[cost].to_numpy(), g[value].to_numpy())] for g in groups]
    out = pd.concat(parts) if parts else df.iloc[:0]
    return out.sort_values([by, cost] if by else [cost], kind="stable")
