"""Successive halving over the candidates, decided by Optuna.

Optuna's GridSampler draws the order in which candidates enter the study (seeded),
and its SuccessiveHalvingPruner (asynchronous successive halving, ASHA) decides at
each rung which candidates go on. The controller reports a rung's values in the
sampler's order once the rung's trials have all finished, so the decisions do not
depend on which worker finished first: the same seed gives the same rungs locally
and on Ray. Optuna's own study lives in RUN/search.db (readable by optuna-dashboard);
it is rebuilt from results.db at every start, which stays the one record.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .candidates import Candidate

STUDY_FILE = "search.db"


@dataclass(frozen=True)
class RungPlan:
    """Rung i (1-based) fine-tunes about ceil(n / reduction^i) candidates for
    steps * reduction^(i-1) steps each."""
    steps: int                     # the first rung's steps per candidate
    counts: tuple[int, ...]        # candidates per rung, planned

    def steps_at(self, rung: int) -> int:
        return self.steps * self.reduction ** (rung - 1)

    reduction: int = 3

    @property
    def total(self) -> int:
        return sum(n * self.steps_at(i + 1) for i, n in enumerate(self.counts))


def plan_rungs(n: int, reduction: int, min_steps: int, budget_steps: Optional[int]) -> RungPlan:
    """The rungs for `n` trainable candidates: halve (by `reduction`) until one is left;
    with a step budget, the first rung's steps are what the budget allows (at least
    `min_steps`), and rungs the budget cannot pay for are dropped."""
    counts, k = [], n
    while k > 1 or not counts:
        k = max(1, math.ceil(k / reduction))
        counts.append(k)
        if k == 1:
            break
    if budget_steps is None:
        return RungPlan(min_steps, tuple(counts), reduction)
    weight = sum(c * reduction ** i for i, c in enumerate(counts))
    steps = max(min_steps, budget_steps // max(weight, 1))
    plan = RungPlan(steps, tuple(counts), reduction)
    while len(plan.counts) > 1 and plan.total > budget_steps:
        plan = RungPlan(steps, plan.counts[:-1], reduction)
    return plan


class Study:
    """The Optuna study of one search, rebuilt for every start of `find`."""

    def __init__(self, run_dir: Path, candidates: list[Candidate], reduction: int, seed: int, name: str):
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        path = Path(run_dir) / STUDY_FILE
        for stale in (path, path.with_name(path.name + "-journal")):
            stale.unlink(missing_ok=True)
        self.optuna = optuna
        keys = [c.key for c in candidates]
        self.by_key = {c.key: c for c in candidates}
        self.study = optuna.create_study(
            storage=f"sqlite:///{path}", study_name=name, direction="maximize",
            sampler=optuna.samplers.GridSampler({"candidate": keys}, seed=seed),
            pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=reduction,
                                                          min_early_stopping_rate=0))
        self.reduction = reduction
        self.trials = {}
        self.order: list[str] = []          # candidate keys, in the order the sampler drew them
        for _ in keys:
            trial = self.study.ask()
            key = trial.suggest_categorical("candidate", keys)
            for k, v in self.by_key[key].params().items():
                trial.set_user_attr(k, v)
            self.trials[key] = trial
            self.order.append(key)

    def promote(self, rung: int, scores: dict[str, float]) -> list[str]:
        """Report each candidate's score at `rung` (0: the screen), in the sampler's
        order; returns those the pruner lets go on."""
        kept = []
        for key in self.order:
            if key not in scores:
                continue
            trial = self.trials[key]
            trial.report(scores[key], step=self.reduction ** rung)
            if trial.should_prune():
                self.stop(key)
            else:
                kept.append(key)
        return kept

    def stop(self, key: str, reason: str = "pruned") -> None:
        trial = self.trials.pop(key, None)
        if trial is not None:
            trial.set_user_attr("stopped", reason)
            self._tell(trial, state=self.optuna.trial.TrialState.PRUNED)

    def finish(self, scores: dict[str, float]) -> None:
        for key in list(self.trials):
            trial = self.trials.pop(key)
            value = scores.get(key)
            if value is None or math.isnan(value):
                self._tell(trial, state=self.optuna.trial.TrialState.FAIL)
            else:
                self._tell(trial, value)

    def _tell(self, trial, value=None, state=None) -> None:
        """study.tell; the GridSampler asks the study to stop once its grid is used up, which
        only study.optimize() can do: the trial is stored before it asks (optuna's _tell),
        so that request is dropped here."""
        try:
            self.study.tell(trial, value, state=state)
        except RuntimeError as e:
            if "Study.stop" not in str(e):
                raise
