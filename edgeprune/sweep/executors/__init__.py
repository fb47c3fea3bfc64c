"""Executors run a sweep's tasks and report what happens as events
(edgeprune.sweep.events); the engine records them.

  local  one after another, in this process (debugging, tests, one small machine)
  ray    in parallel on a local Ray instance or an existing Ray cluster

An executor is a class in the executor registry (`local` and `ray` are imported
when a sweep names them): `Executor(cfg)` connects (a failure there writes
nothing), `executor.run(job)` yields events, `close()` ends.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from ...config import SweepConfig
from ...data import DataSplits
from ..events import Event
from ..options import RunOptions
from ..plan import TrialTask
from ..settings import TrialSettings

# on_step(trial_id, step, total_steps, epoch): live progress, not recorded
StepCallback = Callable[[str, int, int, float], None]


@dataclass
class SweepJob:
    """Everything an executor needs to run a batch of tasks: what they compute
    (settings), how they run (options), the data, and what earlier tasks left."""
    tasks: list[TrialTask]
    settings: TrialSettings
    options: RunOptions
    data: DataSplits
    on_step: StepCallback = field(default=lambda *a: None)
    finished: dict = field(default_factory=dict)      # done trial id -> its row (a parent's model_path)


class Executor:
    def __init__(self, cfg: SweepConfig):
        self.cfg = cfg

    def run(self, job: SweepJob) -> Iterator[Event]:
        raise NotImplementedError

    def close(self) -> None:
        pass
