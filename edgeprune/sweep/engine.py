"""The sweep engine, the one controller: plan trials, store them, hand the
unfinished ones to an executor as tasks, and record every event it reports. It
alone writes the store, and it holds the run folder's lock while it does. Running
the same sweep again resumes it.

A start that fails (a bad Ray address, data that cannot be read, weights that
cannot be had, a run folder holding another sweep) writes nothing (preflight).
"""
from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Optional, Sequence

import torch

from .. import scratch
from ..config import SweepConfig
from ..diskspace import DiskFull, disk_full, stops_on_full_disk
from ..data import load_dataset
from ..lock import RunLock
from ..registry import EXECUTORS
from ..run import RunFolder
from ..store import IDENTITY_VERSION, ResultStore
from . import preflight
from .events import Failed, Finished, Started
from .executors import SweepJob
from .options import RunOptions
from .plan import TrialSpec, TrialTask, plan_tasks, plan_trials
from .progress import SilentProgress
from .settings import TrialSettings, adopt_stored
from .shared_timing import SharedTiming
from .sink import ArtifactSink


class _Recorder:
    """Turns executor events into store writes and progress."""

    def __init__(self, store: ResultStore, progress: SilentProgress, by_id: dict, models: ArtifactSink,
                 timing: SharedTiming):
        self.store, self.progress, self.by_id, self.models, self.timing = store, progress, by_id, models, timing
        self.running: dict[str, TrialTask] = {}

    def __call__(self, event) -> None:
        task = event.task
        if isinstance(event, Started):
            for trial_id in task.trial_ids:
                self.store.mark_running(trial_id)
            self.running[task.trial_ids[0]] = task
            self.progress.task_started(task)
            return
        self.running.pop(task.trial_ids[0], None)
        if isinstance(event, Finished):
            tid = task.spec.trial_id
            if event.model is not None and tid in event.rows and "model_path" not in event.rows[tid]:
                # kept for the trials that start from it: the driver writes it, workers need no shared disk
                event.rows[tid]["model_path"] = self.models.put_model(tid, event.model)
            for row in event.rows.values():      # one latency per architecture and backend in a run
                self.timing.unify(row)
            self.store.finish(event.rows)
            for trial_id, error in event.errors.items():
                self.store.mark_failed(trial_id, error)
            results = [(self.by_id[i], "done", event.rows[i]) for i in event.rows]
            results += [(self.by_id[i], "failed", None) for i in event.errors]
        elif isinstance(event, Failed):
            results = []
            for trial_id in task.trial_ids:
                own = trial_id == task.spec.trial_id
                self.store.mark_failed(trial_id, event.error if own else
                                       f"the trial it is made from failed: {event.error}")
                results.append((self.by_id[trial_id], "failed", None))
        self.progress.task_finished(task, results)

    def cancel_running(self, reason: str = "interrupted by the user") -> None:
        for task in self.running.values():
            for trial_id in task.trial_ids:
                try:
                    self.store.mark_cancelled(trial_id, reason)
                except DiskFull:
                    pass      # the store's disk is full: left `running`, which a resumed sweep reruns too
            self.progress.task_finished(task, [(self.by_id[i], "cancelled", None) for i in task.trial_ids])
        self.running.clear()


def run_sweep(cfg: SweepConfig, progress: Optional[SilentProgress] = None, retry_failed: bool = False,
              extend: bool = False, extra: Sequence[TrialSpec] = (),
              planned: Optional[Sequence[TrialSpec]] = None) -> Path:
    """Run (or resume) the sweep `cfg` describes; returns the run folder. `extend`
    lets a run folder take trials its config did not name (new models, algorithms
    or rates); RUN/config.yaml then records them all. `extra` are trials beyond the
    config's (refinements: edgeprune.sweep.refine); `planned`, trials instead of the
    config's (a search's screen and rungs: edgeprune.search)."""
    progress = progress or SilentProgress()
    run = RunFolder(cfg.out)
    existing = preflight.read_existing(run)       # a folder holding another sweep is refused before any write
    cfg, notes = adopt_stored(cfg.model_copy(deep=True), existing.settings)
    for note in notes:
        progress.note(note)
    specs = (list(planned) if planned is not None else plan_trials(cfg)) + [s for s in extra]
    settings = TrialSettings.from_config(cfg)
    preflight.check_resumable(existing, settings.identity, specs, run, extend)
    preflight.check_device(cfg)
    preflight.check_backends(cfg)
    # where a full disk stops the sweep: the run folder, its storage, the temporary model files
    disks = [run.path, cfg.storage, scratch.root()]
    scratch.remove_stale()                       # what killed sweeps (and their workers) left
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data, fingerprint = None, existing.fingerprint
    if preflight.todo(specs, existing, retry_failed):
        # unreadable data (or too few images to rebuild layers from): nothing written, no executor started
        data = preflight.with_reconstruction_images(cfg.prune, load_dataset(cfg.dataset, seed=cfg.seed), cfg.seed)
        fingerprint = preflight.fingerprint(data)
        preflight.check_data(existing, fingerprint, run)
        preflight.check_normalization(cfg, data)
        preflight.check_models(cfg, preflight.todo(specs, existing, retry_failed), data.num_classes)
    executor = EXECUTORS.get(cfg.executor)(cfg)  # connects before any write: a failure there writes nothing
    # leaving: the executor closes, then a full disk is named, then what its workers left is removed
    with scratch.tidied(), stops_on_full_disk(disks), closing(executor):
        with RunLock(run.path), run.store(readonly=False) as store:
            existing = preflight.read_stored(store)           # again, now that the folder is ours
            todo = preflight.todo(specs, existing, retry_failed)
            if existing.settings is None:
                store.set_meta("settings", settings.identity)
                store.set_meta("identity_version", IDENTITY_VERSION)
            if fingerprint is not None and existing.fingerprint is None:
                store.set_meta("data_fingerprint", fingerprint)
            run.write_config(cfg, merge=extend and not existing.new)
            store.add_trials(s.to_row() for s in specs)
            finished = {i: t.metrics for i, t in existing.trials.items() if t.status == "done"}
            by_id = {s.trial_id: s for s in specs}
            # cascade links and refinements keep their models: children start from them, refine and deploy
            # need no retraining
            keep = frozenset({s.trial_id for s in specs if s.parent} | {s.parent for s in specs if s.parent})
            tasks = plan_tasks(todo, finished, keep)
            for task in tasks:               # a variants-only task's primary is shown, not stored
                by_id.setdefault(task.spec.trial_id, task.spec)
            progress.start(total=len(specs), already_done=len(specs) - len(todo))
            timing = SharedTiming(finished.values())
            options = RunOptions.from_config(cfg, run.path)
            recorder = _Recorder(store, progress, by_id, ArtifactSink(options.storage), timing)
            try:
                if tasks:
                    data = data or preflight.with_reconstruction_images(cfg.prune, load_dataset(cfg.dataset, seed=cfg.seed), cfg.seed)
                    job = SweepJob(tasks, settings, options, data, on_step=progress.step, finished=finished)
                    for event in executor.run(job):
                        recorder(event)
            except KeyboardInterrupt:
                recorder.cancel_running()
                raise
            except Exception as e:
                full = disk_full(e, disks)
                if full is None:
                    raise
                # stopped, not failed: the trials that were running run again when the sweep resumes
                recorder.cancel_running("stopped: a disk is full")
                raise full from None
            finally:
                progress.stop()
    return run.path
