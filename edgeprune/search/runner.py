"""What every stage of a search shares: the config it runs with, its goals, its run
folder, and running a batch of trials there as one sweep."""
from __future__ import annotations

from typing import Optional

import pandas as pd

from ..config import BASELINE, SweepConfig
from ..errors import EdgepruneError
from ..run import RunFolder
from ..sweep import SilentProgress, run_sweep
from .goals import Goals
from .schedule import RungPlan, plan_rungs


def prepare(cfg: SweepConfig) -> SweepConfig:
    """The sweep settings a search runs with: its screen fine-tunes nothing (rungs say how
    many steps), every model is kept (rungs continue them), the latency goal's backend
    is timed first (the latency column and the cut are on it)."""
    if cfg.search is None:
        raise EdgepruneError("the config has no `search:` section; give its goals and budget, e.g. search: {goals: "
                             "{max_latency_ms: 5}, budget: {steps: 2000}} (docs: how-to/find)")
    cfg = cfg.model_copy(deep=True)
    cfg.finetune.max_steps = 0
    cfg.baseline, cfg.save_models = True, True
    on = cfg.search.goals.latency_on
    backends = cfg.measure.latency_backends()
    if on is not None and backends and backends[0].label != on:
        cfg.measure.latency = sorted(backends, key=lambda b: b.label != on)
    return cfg


def _name(row: pd.Series) -> str:
    what = "unpruned" if row["algorithm"] == BASELINE else f"{row['algorithm']} at {row['rate_label']}"
    return f"{row['model']} {what}"


class Search:
    def __init__(self, cfg: SweepConfig, progress: SilentProgress, retry_failed: bool):
        self.cfg, self.progress, self.retry_failed = cfg, progress, retry_failed
        self.search = cfg.search
        self.goals = Goals(self.search)
        self.run = RunFolder(cfg.out)
        self.by_key: dict = {}            # candidate key -> Candidate (set by the rungs)

    # -- running trials --------------------------------------------------------------------------------
    def sweep(self, specs) -> pd.DataFrame:
        if specs:
            run_sweep(self.cfg, progress=self.progress, retry_failed=self.retry_failed, extend=True, planned=specs)
        from ..report.data import load_runs
        df = load_runs(self.run.path).trials
        return df.set_index("trial_id", drop=False)

    def row(self, df: pd.DataFrame, trial_id: str) -> Optional[pd.Series]:
        if trial_id not in df.index:
            return None
        r = df.loc[trial_id]
        return r if r.get("status") == "done" else None

    def lineages(self) -> int:
        """Models trained in the first rung at most: pruned candidates that share no training."""
        goals = self.search.goals
        targets = 1 if goals.hard else len(self.search.rates or [t for t in self.cfg.rates if t.kind == "channels"])
        return len(self.cfg.models) * len(self.cfg.algorithms) * len(self.cfg.allocation) * targets

    def check_budget(self) -> RungPlan:
        plan = plan_rungs(self.lineages(), self.search.reduction, self.search.min_steps, self.search.budget.steps)
        steps = self.search.budget.steps
        first = plan.counts[0] * self.search.min_steps
        if steps is not None and steps < first:
            raise EdgepruneError(f"search.budget.steps {steps} cannot pay for the first rung: {plan.counts[0]} "
                                 f"candidate(s) x search.min_steps {self.search.min_steps} = {first} steps; raise "
                                 f"budget.steps to at least {first}, or lower search.min_steps")
        return plan
