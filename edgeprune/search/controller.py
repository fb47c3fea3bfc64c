"""`edgeprune find`: screen every candidate cut to the hard goals and rebuilt (no
fine-tuning), then fine-tune the promising ones in rungs of growing budget
(successive halving), and stop when the goals are met and another rung cannot
change the winner by more than the margin, or when the budget is spent.

Every screen and rung is a sweep over the same run folder (the engine schedules,
runs in parallel on Ray and stores them): a killed search resumes at its last
finished rung, and a trial that finished is never trained again.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .. import search_record as rec
from ..config import SweepConfig
from ..sweep import SilentProgress
from .rungs import run_rungs
from .runner import Search, prepare
from .screen import screen

if TYPE_CHECKING:
    from .result import FindResult


def find(cfg: SweepConfig, progress: Optional[SilentProgress] = None, retry_failed: bool = False,
         export: bool = True) -> "FindResult":
    """Run (or resume) the search `cfg.search` describes over the candidates `cfg`
    names; returns the winner (exported, verified, for its runtime) and the rungs."""
    from .result import FindResult, export_winner
    progress = progress or SilentProgress()
    cfg = prepare(cfg)
    s = Search(cfg, progress, retry_failed)
    plan = s.check_budget()                 # a budget too small for one rung: said before anything runs
    before = rec.read(cfg.out)
    clock = rec.Clock(before.seconds if before else 0.0)
    record = rec.SearchRecord(s.goals.describe(), cfg.search.objective,
                              {"first_rung_steps": plan.steps, "candidates_per_rung": list(plan.counts),
                               "reduction": plan.reduction, "planned_steps": plan.total})
    base, trainable, df = screen(s, record)
    run_rungs(s, record, plan, base, trainable, df, clock)
    record.seconds = clock.seconds
    rec.write(cfg.out, record)
    result = FindResult(Path(cfg.out), record, s.goals, s.sweep([]))
    if export and record.winner is not None:
        result.release, result.export_error = export_winner(cfg, record.winner)
    return result
