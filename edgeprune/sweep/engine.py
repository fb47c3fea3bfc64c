"""The sweep engine: plan trials, store them, run the unfinished ones, record each
result the moment it ends. Running the same sweep again resumes it."""
from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import yaml

from ..config import SweepConfig
from ..data import load_dataset
from ..errors import EdgepruneError
from ..registry import Registry
from ..store import ResultStore
from .plan import TrialSpec, plan_trials, shared_settings
from .progress import SilentProgress
from .trial import TrialContext, run_trial

EXECUTORS: Registry = Registry("executor")


def describe_error(exc: BaseException) -> str:
    """One line for the store: the exception and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}{where}"


@EXECUTORS.register("local")
class LocalExecutor:
    """Runs trials one after another in this process (debugging, tests, 1 machine)."""

    def run(self, specs: list[TrialSpec], settings: dict, run_dir: Path, data, store: ResultStore,
            progress: SilentProgress) -> None:
        ctx = TrialContext(settings, data, run_dir, on_step=progress.step)
        for spec in specs:
            store.mark_running(spec.trial_id)
            progress.trial_started(spec)
            try:
                metrics = run_trial(spec, ctx)
            except KeyboardInterrupt:
                store.mark_cancelled(spec.trial_id, "interrupted by the user")
                progress.trial_finished(spec, "cancelled", None)
                raise
            except Exception as exc:  # a trial that raises is recorded and the sweep goes on
                store.mark_failed(spec.trial_id, describe_error(exc))
                progress.trial_finished(spec, "failed", None)
                continue
            store.mark_done(spec.trial_id, metrics)
            progress.trial_finished(spec, "done", metrics)


def _check_same_settings(store: ResultStore, settings: dict, run_dir: Path) -> None:
    stored = store.get_meta("settings")
    if stored is None:
        store.set_meta("settings", settings)
        return
    if stored != settings:
        diff = _first_difference(stored, settings)
        raise EdgepruneError(f"run folder {str(run_dir)!r} holds a sweep with other settings ({diff}); "
                             "use another --out, or restore the settings to resume it")


def _first_difference(a, b, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path}: {a!r} -> {b!r}"


def run_sweep(cfg: SweepConfig, progress: Optional[SilentProgress] = None,
              retry_failed: bool = False) -> Path:
    """Run (or resume) the sweep `cfg` describes; returns the run folder."""
    progress = progress or SilentProgress()
    run_dir = Path(cfg.out)
    specs = plan_trials(cfg)
    settings = shared_settings(cfg)
    with ResultStore(run_dir) as store:
        _check_same_settings(store, settings, run_dir)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        store.add_trials(s.to_row() for s in specs)
        wanted = {s.trial_id for s in specs}
        todo_ids = [t.trial_id for t in store.to_run(retry_failed) if t.trial_id in wanted]
        by_id = {s.trial_id: s for s in specs}
        todo = [by_id[i] for i in todo_ids]
        progress.start(total=len(specs), already_done=len(specs) - len(todo))
        try:
            if todo:
                if cfg.threads:
                    torch.set_num_threads(cfg.threads)
                data = load_dataset(cfg.dataset, seed=cfg.seed)
                EXECUTORS.get(cfg.executor)().run(todo, settings, run_dir, data, store, progress)
        finally:
            progress.stop()
    return run_dir
