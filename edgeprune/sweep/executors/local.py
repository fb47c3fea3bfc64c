"""Serial, in-process execution."""
from __future__ import annotations

from ..trial import TrialContext, run_trial
from . import EXECUTORS, SweepJob
from .errors import describe_error


@EXECUTORS.register("local")
class LocalExecutor:
    def __init__(self, cfg):
        pass

    def close(self) -> None:
        pass

    def __call__(self, job: SweepJob) -> None:
        run_local(job)


def run_local(job: SweepJob) -> None:
    ctx = TrialContext(job.settings, job.data, job.run_dir, on_step=job.progress.step, artifacts=job.artifacts,
                       device=job.cfg.device)
    for spec in job.specs:
        job.store.mark_running(spec.trial_id)
        job.progress.trial_started(spec)
        try:
            metrics = run_trial(spec, ctx)
        except KeyboardInterrupt:
            job.store.mark_cancelled(spec.trial_id, "interrupted by the user")
            job.progress.trial_finished(spec, "cancelled", None)
            raise
        except Exception as exc:  # a trial that raises is recorded and the sweep goes on
            job.store.mark_failed(spec.trial_id, describe_error(exc))
            job.progress.trial_finished(spec, "failed", None)
            continue
        job.store.mark_done(spec.trial_id, metrics)
        job.progress.trial_finished(spec, "done", metrics)
