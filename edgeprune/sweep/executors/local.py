"""Serial, in-process execution."""
from __future__ import annotations

from typing import Iterator

from ...errors import describe_error
from ..context import TrialContext
from ..events import Event, Failed, Finished, Started
from ..trial import run_trial


class LocalExecutor:
    def __init__(self, cfg):
        self.cfg = cfg

    def close(self) -> None:
        pass

    def run(self, job) -> Iterator[Event]:
        ctx = TrialContext(job.settings, job.data, job.run_dir, artifacts=job.artifacts, device=job.cfg.device,
                           weights_dir=job.cfg.weights_dir, prune_timeout=job.cfg.prune.timeout_s)
        for task in job.tasks:
            yield Started(task)
            ctx.on_step = lambda s, t, e, trial=task.trial_ids[0]: job.on_step(trial, s, t, e)
            try:
                outcome = run_trial(task.spec, ctx, task.variants, task.trained)
            except Exception as exc:  # a trial that raises is recorded and the sweep goes on
                yield Failed(task, describe_error(exc))
                continue
            rows = dict(outcome.variants)
            if task.record:
                rows = {task.spec.trial_id: outcome.metrics, **rows}
            yield Finished(task, rows, outcome.errors)
