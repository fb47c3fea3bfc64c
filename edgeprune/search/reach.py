"""What a cut can hope for: fine-tuning a pruned model brings it back toward the
model it was cut from, rarely past it. So a cut's accuracy is bounded by its unpruned
model's (same runtime precision where measured, else fp32), and a candidate whose bound
cannot beat the current winner by more than the search's margin, or cannot reach the
accuracy goals at all, is not worth a fine-tune step. Only models whose weights were
trained for the task are bounded (metric `task_weights`); the margin allows for a cut
that fine-tuning lifts slightly past its model.

Measured on the published CIFAR-10 ResNets (bench/find.py's grid, 100 fine-tune steps a
point): none of 56 pruned trials reached its unpruned model's accuracy (the closest:
0.3 points below). Without this rule `find` spent its whole budget on a ResNet-44 cut
while unpruned int8 models already met the latency goal."""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from ..config import NO_VARIANT
from .candidates import Candidate
from .runner import Search, _name


def ceilings(base: list[Candidate], rows: dict[str, Optional[pd.Series]]) -> dict[tuple[str, str], float]:
    """(model label, quantize) -> the unpruned model's measured accuracy, for models whose
    weights were trained for the task (random weights, or a replaced head, fine-tune upward
    from near chance: no bound)."""
    out = {}
    for c in base:
        r = rows.get(c.key)
        trained = r is not None and not pd.isna(r.get("task_weights")) and bool(r.get("task_weights"))
        if trained and not pd.isna(r.get("accuracy")):
            out[(c.spec.model_label, c.spec.quantize)] = float(r["accuracy"])
    return out


def ceiling(c: Candidate, bounds: dict[tuple[str, str], float]) -> float:
    label = c.spec.model_label
    return bounds.get((label, c.spec.quantize), bounds.get((label, NO_VARIANT), math.inf))


def out_of_reach(s: Search, candidates: list[Candidate], rows: dict[str, Optional[pd.Series]],
                 leader: Optional[str], bounds: dict[tuple[str, str], float]) -> dict[str, str]:
    """candidate key -> why fine-tuning it cannot change the answer (those that can are left out)."""
    out = {}
    best = rows[leader] if leader is not None else None
    margin = s.search.margin / 100
    for c in candidates:
        top = ceiling(c, bounds)
        if math.isinf(top):
            continue
        hoped = rows[c.key].copy() if rows.get(c.key) is not None else pd.Series(dtype=object)
        hoped["accuracy"] = top
        if "accuracy_drop" in hoped:
            hoped["accuracy_drop"] = 0.0        # at best, no drop from the model it was cut from
        missed = s.goals.misses(hoped, s.goals.accuracy)
        if missed:
            out[c.key] = f"cannot reach {'; '.join(missed)} (at best its unpruned model's accuracy)"
        elif (best is not None and s.search.objective == "accuracy" and c.key != leader
              and top - float(best["accuracy"]) <= margin):
            out[c.key] = (f"cannot beat {_name(best)} ({float(best['accuracy']):.2%}) by more than "
                          f"{s.search.margin:g} points: its unpruned model scores {top:.2%}")
    return out
