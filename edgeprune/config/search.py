"""The `search:` section (`edgeprune find`): the goals a model must meet on the
device, what to maximise among those that meet them, and how much fine-tuning the
search may spend. The goals keep the names of `edgeprune recommend`'s options."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ..errors import EdgepruneError
from ..units import parse_count, parse_fraction, parse_ms, parse_points, parse_size
from .sections import Strict

# a goal -> how its value is read (the units recommend's options take)
_PARSE = {"max_latency_ms": parse_ms, "max_size": parse_size, "max_params": parse_count, "max_macs": parse_count,
          "min_accuracy": parse_fraction, "max_accuracy_drop": parse_points}


class Goals(Strict):
    max_latency_ms: Optional[float] = Field(None, gt=0, description="median latency on `latency_on` (5, '5ms')")
    latency_on: Optional[str] = Field(None, description="the measure.latency backend (its label) the latency goal is "
                                      "timed on; default: the first one")
    max_size: Optional[float] = Field(None, gt=0, description="the weights' size in bytes (500000, '500KB', '2MiB')")
    max_params: Optional[float] = Field(None, gt=0, description="parameters (250000, '250k')")
    max_macs: Optional[float] = Field(None, gt=0, description="MACs per image ('20M')")
    min_accuracy: Optional[float] = Field(None, ge=0, le=1, description="top-1 accuracy (0.9, '90%')")
    max_accuracy_drop: Optional[float] = Field(None, ge=0, le=1, description="accuracy lost against the candidate's "
                                               "unpruned model, in points (1, '1pt')")

    @model_validator(mode="before")
    @classmethod
    def _read_units(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = dict(v)
        for key, parse in _PARSE.items():
            if out.get(key) is not None and not isinstance(out[key], bool):
                try:
                    out[key] = parse(out[key], key)
                except EdgepruneError as e:
                    raise ValueError(str(e)) from None
        return out

    @property
    def hard(self) -> dict[str, float]:
        """The goals a candidate's cut is made to meet (cost goals), in the order the cut
        is chosen by: latency first (measured), then MACs, parameters and size."""
        return {k: getattr(self, k) for k in ("max_latency_ms", "max_macs", "max_params", "max_size")
                if getattr(self, k) is not None}


class SearchBudget(Strict):
    steps: Optional[int] = Field(None, gt=0, description="fine-tune steps in all, over every rung and candidate")
    minutes: Optional[float] = Field(None, gt=0, description="wall time in all, the screen included")

    @model_validator(mode="after")
    def _one(self) -> "SearchBudget":
        if (self.steps is None) == (self.minutes is None):
            raise ValueError("give the budget as {steps: N} or {minutes: M}, one of them")
        return self


class SearchConfig(Strict):
    goals: Goals
    objective: Literal["accuracy", "size", "latency", "params", "macs"] = Field(
        "accuracy", description="what the winner is best at among the candidates that meet every goal")
    budget: SearchBudget
    reduction: int = Field(3, ge=2, le=10, description="successive halving: a rung keeps about 1/reduction of the "
                           "candidates and gives each reduction times more steps")
    min_steps: int = Field(50, gt=0, description="fine-tune steps of a candidate in the first rung (at least)")
    margin: float = Field(0.5, ge=0, le=100, description="stop once the next rung cannot lift the winner's "
                          "accuracy by more than this many points")
    rates: Optional[list[float]] = Field(None, description="without a cost goal: the rates each candidate is cut "
                                         "at (default: the sweep's rates)")

    @field_validator("margin", mode="before")
    @classmethod
    def _points(cls, v: Any) -> Any:
        """'0.5pt' reads as 0.5 (points), like a bare number."""
        try:
            return 100 * parse_points(v, "search.margin") if isinstance(v, str) else v
        except EdgepruneError as e:
            raise ValueError(str(e)) from None

    @model_validator(mode="after")
    def _something_to_find(self) -> "SearchConfig":
        g = self.goals
        if not g.hard and g.min_accuracy is None and g.max_accuracy_drop is None:
            raise ValueError("goals: give at least one (max_latency_ms, max_size, max_params, max_macs, min_accuracy "
                             "or max_accuracy_drop)")
        if g.latency_on is not None and g.max_latency_ms is None:
            raise ValueError("goals.latency_on names where max_latency_ms is timed; give max_latency_ms too")
        if self.objective != "accuracy" and g.min_accuracy is None and g.max_accuracy_drop is None:
            raise ValueError(f"objective {self.objective}: without min_accuracy or max_accuracy_drop the smallest "
                             "network always wins; give an accuracy goal")
        return self
