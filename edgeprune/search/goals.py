"""The search's goals read as recommend's constraints, so that `find` and
`recommend` agree on what "meets the budget" means; and how candidates are ranked
while they are still being fine-tuned."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pandas as pd

from ..config.search import SearchConfig
from ..recommend import CONSTRAINTS, OBJECTIVES, Constraint, show_metric

# a goal of the search config -> recommend's keyword (the same budget, spelled as recommend spells it)
_KEYWORD = {"max_latency_ms": "max_latency_ms", "max_size": "max_size_bytes", "max_params": "max_params",
            "max_macs": "max_macs", "min_accuracy": "min_accuracy", "max_accuracy_drop": "max_accuracy_drop"}
ACCURACY_GOALS = ("min_accuracy", "max_accuracy_drop")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


@dataclass(frozen=True)
class Goal:
    name: str                 # as the config names it (max_latency_ms, ...)
    constraint: Constraint

    @property
    def metric(self) -> str:
        return self.constraint.metric

    def met(self, row: pd.Series) -> bool:
        v = row.get(self.metric)
        return not _missing(v) and bool(self.constraint.ok(pd.Series([float(v)])).iloc[0])

    def show(self, row: pd.Series) -> str:
        return show_metric(self.metric, row.get(self.metric))

    def describe(self) -> str:
        return f"{self.name} {self.constraint.show()}"


class Goals:
    def __init__(self, search: SearchConfig):
        self.search = search
        self.goals = []
        for name, keyword in _KEYWORD.items():
            value = getattr(search.goals, name)
            if value is not None:
                b = CONSTRAINTS[keyword]
                self.goals.append(Goal(name, Constraint(keyword, b.metric, b.upper, float(value), b.flag, b.what)))
        self.metric, self.higher = OBJECTIVES[search.objective]

    @property
    def hard(self) -> list[Goal]:
        """Cost goals: a candidate's cut is made to meet them; fine-tuning does not change them."""
        return [g for g in self.goals if g.name not in ACCURACY_GOALS]

    @property
    def accuracy(self) -> list[Goal]:
        return [g for g in self.goals if g.name in ACCURACY_GOALS]

    def misses(self, row: pd.Series, goals: Optional[list[Goal]] = None) -> list[str]:
        """What `row` misses, in words ('max_latency_ms 0.500 ms: 0.612 ms')."""
        return [f"{g.describe()}: {g.show(row)}" for g in (self.goals if goals is None else goals) if not g.met(row)]

    def meets(self, row: pd.Series) -> bool:
        return not self.misses(row)

    def objective(self, row: pd.Series) -> float:
        """Larger is better (costs negated), NaN where unmeasured."""
        v = row.get(self.metric)
        return float("nan") if _missing(v) else (float(v) if self.higher else -float(v))

    def score(self, row: pd.Series, optimistic_gain: float = 0.0) -> float:
        """What a rung ranks by (larger is better). For accuracy: the accuracy. For a cost
        objective: the candidates that meet the accuracy goals first, cheapest first (in
        (1, 2]); then the rest by accuracy (in [0, 1])."""
        acc = row.get("accuracy")
        if _missing(acc):
            return float("nan")
        acc = float(acc) + optimistic_gain
        if self.search.objective == "accuracy":
            return acc
        shifted = row.copy()
        shifted["accuracy"] = acc
        if not _missing(row.get("accuracy_drop")):
            shifted["accuracy_drop"] = float(row["accuracy_drop"]) - optimistic_gain
        if self.misses(shifted, self.accuracy):
            return min(acc, 1.0)
        cost = row.get(self.metric)
        return 1.0 + 1.0 / (1.0 + float(cost)) if not _missing(cost) else float("nan")

    def describe(self) -> str:
        return ", ".join(g.describe() for g in self.goals)
