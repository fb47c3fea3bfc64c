"""Serial, in-process execution."""
from __future__ import annotations

from typing import Iterator

from ...errors import describe_error
from ..context import TrialContext
from ..events import Event, Failed, Finished, Started
from ...prune.saved import loads
from ..trial import Parent, run_trial
from ..shared_timing import SharedTiming
from .lineage import Lineage


class LocalExecutor:
    def __init__(self, cfg):
        self.cfg = cfg

    def close(self) -> None:
        pass

    def run(self, job) -> Iterator[Event]:
        ctx = TrialContext(job.settings, job.data, job.options)
        ctx.timing = SharedTiming(job.finished.values())
        lineage = Lineage(job.tasks, job.finished, ctx.sink)
        try:
            for task in job.tasks:           # planned in order: a parent before its children
                if task.spec.trial_id in lineage.failed:
                    continue                 # failed with its parent (already reported)
                yield Started(task)
                ctx.on_step = lambda s, t, e, trial=task.trial_ids[0]: job.on_step(trial, s, t, e)
                try:
                    parent = lineage.parent_of(task)
                    outcome = run_trial(task.spec, ctx, task.variants, task.trained,
                                        parent and Parent(loads(parent[0], task.parent), parent[1]), task.keep_model)
                except Exception as exc:  # a trial that raises is recorded and the sweep goes on
                    full = ctx.disk_full(exc)
                    if full is not None:     # ... unless a disk is full: then the sweep stops, the trial unfailed
                        raise full from None
                    event = Failed(task, describe_error(exc))
                else:
                    rows = dict(outcome.variants)
                    if task.record:
                        rows = {task.spec.trial_id: outcome.metrics, **rows}
                    event = Finished(task, rows, outcome.errors, outcome.model_bytes)
                yield event
                yield from lineage.record(event)
        finally:
            ctx.close()
