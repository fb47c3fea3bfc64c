"""Parallel trials on Ray: a local instance using every core (and GPU), or an
existing cluster (`ray.address`, or $RAY_ADDRESS).

- The dataset is put in Ray's object store once; every worker on a node maps the
  same copy (numpy arrays are read zero-copy).
- Models whose head is replaced are adapted once (a Ray task per model, in
  parallel), and the adapted weights are shared with all their trials.
- Trials return their metrics to the driver, which alone writes the SQLite store:
  no shared file system is needed for results.
- A trial whose worker process dies is rerun by Ray up to `ray.max_retries` times,
  then recorded as failed; an exception inside a trial is recorded at once.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings

import torch

from ...data import DataSplits, ImageDataset
from ...errors import EdgepruneError
from ...models import create_model
from ..plan import TrialSpec
from ..trial import TrialContext, adapt_model, adaptation_key, run_trial
from . import EXECUTORS, SweepJob
from .errors import describe_error

try:
    import ray
except ImportError:  # pragma: no cover - exercised only without ray installed
    ray = None

STEP_REPORT_SECONDS = 1.0


# -- data through the object store --------------------------------------------

def pack(data: DataSplits) -> dict:
    def split(d: ImageDataset) -> dict:
        return {"images": d.images.numpy(), "labels": d.labels.numpy(), "classes": d.classes,
                "mean": d.mean, "std": d.std}
    return {"name": data.name, "train": split(data.train), "test": split(data.test)}


def unpack(packed: dict) -> DataSplits:
    def split(d: dict) -> ImageDataset:
        with warnings.catch_warnings():  # the object store's arrays are read-only; we never write them
            warnings.simplefilter("ignore", UserWarning)
            return ImageDataset(torch.from_numpy(d["images"]), torch.from_numpy(d["labels"]), d["classes"],
                                tuple(d["mean"]), tuple(d["std"]))
    return DataSplits(packed["name"], split(packed["train"]), split(packed["test"]))


# -- worker side ---------------------------------------------------------------

_CONTEXTS: dict[str, TrialContext] = {}   # per worker process, by settings


def _context(settings: dict, packed_data: dict, run_dir: str, artifacts, threads: int,
             device: str = "auto") -> TrialContext:
    torch.set_num_threads(threads)
    key = json.dumps(settings, sort_keys=True) + run_dir + device
    if key not in _CONTEXTS:
        # a worker given no GPU by Ray sees none (CUDA_VISIBLE_DEVICES), so "auto" picks the CPU
        _CONTEXTS[key] = TrialContext(settings, unpack(packed_data), run_dir, artifacts=artifacts, device=device)
    return _CONTEXTS[key]


def _trial_task(spec_dict: dict, settings: dict, packed_data: dict, run_dir: str, artifacts, adapted: dict,
                threads: int, tracker, device: str) -> dict:
    spec = TrialSpec.from_dict(spec_dict)
    ctx = _context(settings, packed_data, run_dir, artifacts, threads, device)
    ctx.adapted_states.update(adapted)
    tracker.started.remote(spec.trial_id)
    last = [0.0]

    def on_step(step: int, total: int, epoch: float) -> None:
        now = time.monotonic()
        if now - last[0] >= STEP_REPORT_SECONDS or step == total:
            last[0] = now
            tracker.step.remote(spec.trial_id, step, total, epoch)

    ctx.on_step = on_step
    return run_trial(spec, ctx)


def _adapt_task(spec_dict: dict, settings: dict, packed_data: dict, run_dir: str, threads: int, device: str):
    spec = TrialSpec.from_dict(spec_dict)
    m = spec.model
    data = unpack(packed_data)
    probe = create_model(m["name"], data.num_classes, pretrained=m["pretrained"], checkpoint=m.get("checkpoint"))
    if not probe.edgeprune_meta["head_replaced"]:
        return None
    state = adapt_model(spec, _context(settings, packed_data, run_dir, None, threads, device))
    return {k: v.numpy() for k, v in state.items()} if state is not None else None


class _Tracker:
    """Which trials have started (and how often), and their latest step."""

    def __init__(self):
        self.attempts: dict[str, int] = {}
        self.steps: dict[str, tuple] = {}

    def started(self, trial_id: str) -> None:
        self.attempts[trial_id] = self.attempts.get(trial_id, 0) + 1

    def step(self, trial_id: str, step: int, total: int, epoch: float) -> None:
        self.steps[trial_id] = (step, total, epoch)

    def snapshot(self) -> tuple[dict, dict]:
        return dict(self.attempts), dict(self.steps)


# -- driver side ---------------------------------------------------------------

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
        kwargs.update(num_cpus=rc.num_cpus, object_store_memory=_object_store_bytes(),
                      runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
    try:
        ray.init(address=address, **kwargs)
    except Exception as e:  # ray raises ConnectionError, ValueError, RuntimeError... for a bad address
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgepruneError(f"cannot start or reach Ray at {address or 'a local instance'!r} ({first}); check "
                             "ray.address / RAY_ADDRESS, or leave both unset for a local instance") from None
    return True


def _object_store_bytes() -> int:
    # Ray's default takes 30% of RAM; a sweep's dataset needs far less.
    return 1_000_000_000


def _adapt_all(job: SweepJob, data_ref, threads: int) -> dict:
    """Adapt each model whose head was replaced, once, in parallel. The check runs
    on a worker too: building a user's model may do anything, and the driver must
    stay up."""
    ft = job.cfg.finetune
    if ft.order != "adapt_then_prune" or ft.adapt_epochs <= 0:
        return {}
    firsts: dict[str, TrialSpec] = {}
    for spec in job.specs:
        firsts.setdefault(adaptation_key(spec), spec)
    refs = {}
    task = ray.remote(_adapt_task).options(num_cpus=job.cfg.ray.cpus_per_trial, num_gpus=job.cfg.ray.gpus_per_trial,
                                           max_retries=job.cfg.ray.max_retries)
    for key, spec in firsts.items():
        if spec.model["pretrained"] or spec.model.get("checkpoint"):  # random weights get the right head
            refs[key] = task.remote(spec.__dict__ | {}, job.settings, data_ref, str(job.run_dir), threads,
                                    job.cfg.device)
    adapted = {}
    for key, ref in refs.items():
        try:
            state = ray.get(ref)
        except Exception:  # the trials of this model will meet (and record) the same error
            continue
        if state is not None:
            adapted[key] = {k: torch.from_numpy(v.copy()) for k, v in state.items()}
    return adapted


@EXECUTORS.register("ray")
class RayExecutor:
    def __init__(self, cfg):
        self.started_here = _init_ray(cfg)   # before anything is written: a bad address writes nothing

    def close(self) -> None:
        if self.started_here:
            ray.shutdown()

    def __call__(self, job: SweepJob) -> None:
        _run(job)


def _run(job: SweepJob) -> None:
    rc = job.cfg.ray
    threads = max(1, int(rc.cpus_per_trial))
    pending: dict = {}
    seen_attempts: dict[str, int] = {}
    by_id = {s.trial_id: s for s in job.specs}
    try:
        data_ref = ray.put(pack(job.data))
        adapted_ref = ray.put(_adapt_all(job, data_ref, threads))
        tracker = ray.remote(num_cpus=0)(_Tracker).remote()
        task = ray.remote(_trial_task).options(num_cpus=rc.cpus_per_trial, num_gpus=rc.gpus_per_trial,
                                               max_retries=rc.max_retries, retry_exceptions=False)
        for spec in job.specs:
            ref = task.remote(spec.__dict__ | {}, job.settings, data_ref, str(job.run_dir), job.artifacts,
                              adapted_ref, threads, tracker, job.cfg.device)
            pending[ref] = spec
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            attempts, steps = ray.get(tracker.snapshot.remote())
            for trial_id, n in attempts.items():
                for _ in range(n - seen_attempts.get(trial_id, 0)):
                    job.store.mark_running(trial_id)
                    job.progress.trial_started(by_id[trial_id])
                seen_attempts[trial_id] = n
            for trial_id, (step, total, epoch) in steps.items():
                job.progress.step(step, total, epoch, trial_id=trial_id)
            for ref in ready:
                _record(job, pending.pop(ref), ref, rc.max_retries, seen_attempts)
    except KeyboardInterrupt:
        for ref, spec in pending.items():
            ray.cancel(ref, force=True)
            if spec.trial_id in seen_attempts:
                job.store.mark_cancelled(spec.trial_id, "interrupted by the user")
                job.progress.trial_finished(spec, "cancelled", None)
        raise


def _record(job: SweepJob, spec: TrialSpec, ref, max_retries: int, seen: dict) -> None:
    if spec.trial_id not in seen:  # finished before the tracker was polled
        job.store.mark_running(spec.trial_id)
        job.progress.trial_started(spec)
        seen[spec.trial_id] = 1
    try:
        metrics = ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if isinstance(e.cause, BaseException) else e
        job.store.mark_failed(spec.trial_id, describe_error(cause))
        job.progress.trial_finished(spec, "failed", None)
        return
    except ray.exceptions.RayError as e:  # the worker process died (killed, out of memory)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        job.store.mark_failed(spec.trial_id, f"{type(e).__name__}: the worker died {max_retries + 1} time(s), "
                                             f"the last time: {first}")
        job.progress.trial_finished(spec, "failed", None)
        return
    job.store.mark_done(spec.trial_id, metrics)
    job.progress.trial_finished(spec, "done", metrics)
