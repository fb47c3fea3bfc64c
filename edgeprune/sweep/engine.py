"""The sweep engine, the one controller: plan trials, store them, hand the
unfinished ones to an executor as tasks, and record every event it reports. It
alone writes the store. Running the same sweep again resumes it.

A start that fails (a bad Ray address, data that cannot be read, a run folder
holding another sweep) writes nothing.
"""
from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Optional

import torch

from ..artifacts import ArtifactStore
from ..config import SweepConfig
from ..data import load_dataset
from ..errors import EdgepruneError
from ..registry import EXECUTORS
from ..run import RunFolder
from ..store import IDENTITY_VERSION, UNFINISHED, ResultStore
from .events import Failed, Finished, Started
from .executors import SweepJob
from .plan import TrialTask, plan_tasks, plan_trials, shared_settings
from .progress import SilentProgress


def _first_difference(a, b, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path}: {a!r} -> {b!r}"


def _check_same_settings(stored: Optional[dict], settings: dict, run: RunFolder) -> None:
    if stored is not None and stored != settings:
        diff = _first_difference(stored, settings)
        hint = (" (this machine fine-tunes in another precision: set finetune.amp to match the run, e.g. "
                "finetune.amp: off)" if diff.startswith("precision") else "")
        raise EdgepruneError(f"run folder {str(run.path)!r} holds a sweep with other settings ({diff}){hint}; "
                             "use another --out, or restore the settings to resume it")


class _Recorder:
    """Turns executor events into store writes and progress."""

    def __init__(self, store: ResultStore, progress: SilentProgress, by_id: dict):
        self.store, self.progress, self.by_id = store, progress, by_id
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

    def cancel_running(self) -> None:
        for task in self.running.values():
            for trial_id in task.trial_ids:
                self.store.mark_cancelled(trial_id, "interrupted by the user")
            self.progress.task_finished(task, [(self.by_id[i], "cancelled", None) for i in task.trial_ids])
        self.running.clear()


def run_sweep(cfg: SweepConfig, progress: Optional[SilentProgress] = None, retry_failed: bool = False) -> Path:
    """Run (or resume) the sweep `cfg` describes; returns the run folder."""
    progress = progress or SilentProgress()
    run = RunFolder(cfg.out)
    specs = plan_trials(cfg)
    settings = shared_settings(cfg)
    stored, finished = None, {}
    if run.exists():      # read first: a folder holding another sweep is refused before anything is written
        with run.store() as store:
            stored = store.get_meta("settings")
            identity = store.get_meta("identity_version") or 1
            previous = {t.trial_id: t for t in store.trials()}
        if identity != IDENTITY_VERSION:
            raise EdgepruneError(f"run folder {str(run.path)!r} was made by an edgeprune whose trial ids follow rule "
                                 f"{identity} (this one: {IDENTITY_VERSION}), so it cannot be resumed; read it "
                                 "(show, report, export) or start the sweep in another --out")
        _check_same_settings(stored, settings, run)
        finished = {i: t.metrics for i, t in previous.items() if t.status == "done"}
        wanted = UNFINISHED + (("failed",) if retry_failed else ())
        todo = [s for s in specs if s.trial_id not in previous or previous[s.trial_id].status in wanted]
    else:
        todo = list(specs)
    executor = EXECUTORS.get(cfg.executor)(cfg)  # connects first: a failure there writes nothing
    with closing(executor):
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        data = load_dataset(cfg.dataset, seed=cfg.seed) if todo else None   # unreadable data: nothing written
        with run.store(readonly=False) as store:
            if stored is None:
                store.set_meta("settings", settings)
                store.set_meta("identity_version", IDENTITY_VERSION)
            run.write_config(cfg)
            store.add_trials(s.to_row() for s in specs)
            by_id = {s.trial_id: s for s in specs}
            tasks = plan_tasks(todo, finished)
            for task in tasks:               # a variants-only task's primary is shown, not stored
                by_id.setdefault(task.spec.trial_id, task.spec)
            progress.start(total=len(specs), already_done=len(specs) - len(todo))
            recorder = _Recorder(store, progress, by_id)
            try:
                if tasks:
                    artifacts = ArtifactStore(cfg.storage or run.path) if cfg.save_models else None
                    job = SweepJob(cfg, tasks, settings, run.path, data, artifacts, on_step=progress.step)
                    for event in executor.run(job):
                        recorder(event)
            except KeyboardInterrupt:
                recorder.cancel_running()
                raise
            finally:
                progress.stop()
    return run.path
