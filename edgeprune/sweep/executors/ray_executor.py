"""Parallel tasks on Ray: a local instance using every core (and GPU), or an
existing cluster (`ray.address`, or $RAY_ADDRESS).

- The dataset is put in Ray's object store once; every worker on a node maps the
  same copy (numpy arrays are read zero-copy).
- Plugins reach every worker: the driver's plugin modules and registrations
  travel with each task (edgeprune.registry.plugin_snapshot).
- Models whose head is replaced are adapted once (a Ray task per model, in
  parallel), and the adapted weights are shared with all their trials; so are the
  sensitivity maps and latency models of allocated trials (ray_allocation.py).
- Tasks return their rows to the driver, which alone writes the SQLite store:
  no shared file system is needed for results.
- A task whose worker process dies is rerun by Ray up to `ray.max_retries` times,
  then reported as failed; an exception inside a trial is reported at once.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterator, Optional

import torch

from ... import interrupts, scratch
from ...diskspace import DiskFull, stops_on_full_disk
from ...errors import EdgepruneError, describe_error, first_line
from ...prune.saved import loads
from ...registry import plugin_snapshot
from ..events import Event, Failed, Finished, Started
from ..plan import TrialSpec, TrialTask
from ..shared_timing import SharedTiming
from ..sink import ArtifactSink
from ..trial import Parent, run_trial
from ..unpruned import may_need_adaptation, model_key
from .lineage import Lineage
from .ray_allocation import measure_inputs
from .ray_worker import context as _context, pack

try:
    import ray
except ImportError:  # pragma: no cover - exercised only without ray installed
    ray = None

STEP_REPORT_SECONDS = 1.0
WORKER_EXIT_SECONDS = 10.0     # how long a closing driver waits for the workers of its Ray to end


def _task(task: TrialTask, shared: dict, packed_data: dict, adapted: dict, tracker,
          parent: Optional[tuple] = None) -> dict:
    o = shared["options"]
    # a full disk is named here, where the disk is (DiskFull); the driver then stops the sweep
    with stops_on_full_disk([o.run_dir, o.storage, scratch.root()]):
        return _run_task(task, shared, packed_data, adapted, tracker, parent)


def _run_task(task: TrialTask, shared: dict, packed_data: dict, adapted: dict, tracker,
              parent: Optional[tuple]) -> dict:
    ctx = _context(shared, packed_data)
    ctx.models.adapted_states.update(adapted)
    ctx.allocation.given.update(shared.get("allocation_inputs") or {})
    for sig, timings in shared["timing"].items():          # what earlier trials of the run measured
        ctx.timing.by_signature.setdefault(sig, timings)
    trial_id = task.trial_ids[0]
    tracker.started.remote(trial_id, scratch.folder())
    last = [0.0]

    def on_step(step: int, total: int, epoch: float) -> None:
        now = time.monotonic()
        if now - last[0] >= STEP_REPORT_SECONDS or step == total:
            last[0] = now
            tracker.step.remote(trial_id, step, total, epoch)

    ctx.on_step = on_step
    start = Parent(loads(parent[0], task.parent), parent[1]) if parent else None
    outcome = run_trial(task.spec, ctx, task.variants, task.trained, start, task.keep_model)
    rows = dict(outcome.variants)
    if task.record:
        rows = {task.spec.trial_id: outcome.metrics, **rows}
    node = ray.get_runtime_context().get_node_id()
    for row in rows.values():       # where it ran: a cluster's nodes can differ in speed
        row["ray_node"] = node[:12]
    # the worker's scratch folder: a driver that started Ray removes it once the worker is gone
    return {"rows": rows, "errors": outcome.errors, "model": outcome.model_bytes, "scratch": scratch.current()}


def _adapt_task(spec: TrialSpec, shared: dict, packed_data: dict):
    state = _context(shared, packed_data).models.adapted_state(spec)
    return {k: v.numpy() for k, v in state.items()} if state is not None else None


class _Tracker:
    """Which tasks have started (and how often), their latest step, and the workers'
    scratch folders (a task that dies reports nothing else)."""

    def __init__(self):
        self.attempts: dict[str, int] = {}
        self.steps: dict[str, tuple] = {}     # since the last snapshot: neither side keeps every trial's
        self.folders: set = set()

    def started(self, trial_id: str, folder=None) -> None:
        self.attempts[trial_id] = self.attempts.get(trial_id, 0) + 1
        self.folders.add(folder)

    def step(self, trial_id: str, step: int, total: int, epoch: float) -> None:
        self.steps[trial_id] = (step, total, epoch)

    def snapshot(self) -> tuple[dict, dict, set]:
        """Every task's attempts, the steps reported since the last snapshot, the folders."""
        steps, self.steps = self.steps, {}
        return dict(self.attempts), steps, set(self.folders)


# -- driver side ---------------------------------------------------------------

def _start_tracker():
    """The progress tracker lives on the driver's node: placed anywhere, it would die
    with a worker node that a cluster loses, and the trials' starts with it. Not a soft
    preference: Ray passes over a node whose CPUs are all busy even for a 0-CPU actor."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(num_cpus=0)(_Tracker).options(scheduling_strategy=here).remote()


def _poll(tracker) -> tuple[dict, dict, set]:
    """What the tracker has seen; nothing while it cannot answer (a cluster losing a
    node makes actors unavailable for seconds). Progress is only shown, so this must
    not stop a sweep: results come back with the tasks."""
    try:
        return ray.get(tracker.snapshot.remote(), timeout=10)
    except (ray.exceptions.RayError, TimeoutError):
        return {}, {}, set()

def _init_ray(cfg) -> bool:
    """Connect to (or start) Ray; True when this call started it."""
    if ray is None:
        raise EdgepruneError("executor: ray needs the ray package; install it with "
                             "pip install 'edgeprune[ray]' or use executor: local")
    if ray.is_initialized():
        return False
    rc = cfg.ray
    address = rc.address or os.environ.get("RAY_ADDRESS") or None
    kwargs = dict(include_dashboard=rc.dashboard, logging_level=logging.WARNING, log_to_driver=False)
    if address is None:
        # A local instance: small footprint, and workers import what this process imports.
        kwargs.update(num_cpus=rc.num_cpus, object_store_memory=1_000_000_000,  # Ray's default takes 30% of RAM
                      runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
    try:
        ray.init(address=address, **kwargs)
    except Exception as e:  # ray raises ConnectionError, ValueError, RuntimeError... for a bad address
        raise EdgepruneError(f"cannot start or reach Ray at {address or 'a local instance'!r} ({first_line(e)}); "
                             "check ray.address / RAY_ADDRESS, or leave both unset for a local instance") from None
    return True


class RayExecutor:
    def __init__(self, cfg):
        self.cfg = cfg
        self.started_here = _init_ray(cfg)   # before anything is written: a bad address writes nothing
        self.scratch: set = set()            # the workers' scratch folders (edgeprune.scratch)

    def close(self) -> None:
        if self.started_here:
            ray.shutdown()
            # its workers are ending: their files go with them (Ray may end them before they can
            # clean up). Workers on other nodes clean up when they exit, or at their node's next start.
            scratch.remove_when_free(self.scratch, timeout=WORKER_EXIT_SECONDS)

    def run(self, job) -> Iterator[Event]:
        rc = self.cfg.ray
        shared = {"settings": job.settings, "options": job.options, "threads": max(1, int(rc.cpus_per_trial)),
                  "timing": SharedTiming(job.finished.values()).by_signature,
                  "plugins": plugin_snapshot()}
        options = dict(num_cpus=rc.cpus_per_trial, num_gpus=rc.gpus_per_trial, max_retries=rc.max_retries)
        data_ref = ray.put(pack(job.data))
        adapted_ref = ray.put(self._adapt_all(job, shared, data_ref, options))
        # sensitivity maps and the like: measured once per run, before the trials that share them
        shared["allocation_inputs"] = measure_inputs(ray, job, shared, data_ref, adapted_ref, options)
        tracker = _start_tracker()
        remote = ray.remote(_task).options(**options, retry_exceptions=False)
        lineage = Lineage(job.tasks, job.finished, ArtifactSink(job.options.storage))
        pending: dict = {}
        waiting = list(job.tasks)

        def submit_ready() -> Iterator[Event]:
            """Submit every task whose parent is available (chains run in parallel, each in order)."""
            for task in list(waiting):
                if task.spec.trial_id in lineage.failed:
                    waiting.remove(task)
                elif not lineage.waits(task):
                    waiting.remove(task)
                    try:
                        parent = lineage.parent_of(task)
                    except LookupError as e:
                        failed = Failed(task, f"LookupError: {e}")
                        yield failed
                        yield from lineage.record(failed)
                        continue
                    pending[remote.remote(task, shared, data_ref, adapted_ref, tracker, parent)] = task

        by_id = {task.trial_ids[0]: task for task in job.tasks}
        seen: dict[str, int] = {}
        try:
            yield from submit_ready()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                attempts, steps, folders = _poll(tracker)
                interrupts.check()           # a Ctrl-C that Ray turned into one of its errors
                self.scratch |= folders
                for trial_id, n in attempts.items():
                    for _ in range(n - seen.get(trial_id, 0)):
                        yield Started(by_id[trial_id])
                    seen[trial_id] = n
                for trial_id, (step, total, epoch) in steps.items():
                    job.on_step(trial_id, step, total, epoch)
                for ref in ready:
                    task = pending.pop(ref)
                    if task.trial_ids[0] not in seen:  # finished before the tracker was polled
                        seen[task.trial_ids[0]] = 1
                        yield Started(task)
                    event = self._outcome(task, ref, rc.max_retries)
                    interrupts.check()       # not a failure: the user stopped it
                    yield event
                    yield from lineage.record(event)
                    yield from submit_ready()
        finally:
            for ref in pending:        # interrupted (Ctrl-C) or abandoned: stop what still runs
                ray.cancel(ref, force=True)

    def _outcome(self, task: TrialTask, ref, max_retries: int) -> Event:
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if isinstance(e.cause, BaseException) else e
            if isinstance(cause, DiskFull):
                raise cause from None       # the sweep stops; the engine leaves the trial to rerun
            return Failed(task, describe_error(cause))
        except ray.exceptions.RayError as e:  # the worker process died (killed, out of memory)
            return Failed(task, f"{type(e).__name__}: the worker died {max_retries + 1} time(s), the last time: "
                                f"{first_line(e, 200) if str(e).strip() else ''}")
        if result.get("scratch"):
            self.scratch.add(result["scratch"])
        return Finished(task, result["rows"], result["errors"], result.get("model"))

    @staticmethod
    def _adapt_all(job, shared: dict, data_ref, options: dict) -> dict:
        """Adapt each model that may need it, once, in parallel. Building happens on a
        worker: building a user's model may do anything, and the driver must stay up."""
        firsts: dict[str, TrialSpec] = {}
        for task in job.tasks:
            if may_need_adaptation(task.spec, job.settings.finetune):
                firsts.setdefault(model_key(task.spec), task.spec)
        remote = ray.remote(_adapt_task).options(**options)
        refs = {key: remote.remote(spec, shared, data_ref) for key, spec in firsts.items()}
        adapted = {}
        for key, ref in refs.items():
            try:
                state = ray.get(ref)
            except Exception:  # noqa: BLE001 - the trials of this model will meet (and record) the same error
                continue
            if state is not None:
                adapted[key] = {k: torch.from_numpy(v.copy()) for k, v in state.items()}
        return adapted
