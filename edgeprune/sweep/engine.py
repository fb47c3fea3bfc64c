"""The sweep engine: plan trials, store them, hand the unfinished ones to an
executor, which records each result the moment it ends. Running the same sweep
again resumes it."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch
import yaml

from ..artifacts import ArtifactStore
from ..config import SweepConfig
from ..data import load_dataset
from ..errors import EdgepruneError
from ..store import ResultStore
from .executors import SweepJob, get_executor
from .plan import plan_trials, shared_settings
from .progress import SilentProgress


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


@contextmanager
def executor_closed(executor):
    try:
        yield executor
    finally:
        executor.close()


def run_sweep(cfg: SweepConfig, progress: Optional[SilentProgress] = None,
              retry_failed: bool = False) -> Path:
    """Run (or resume) the sweep `cfg` describes; returns the run folder."""
    progress = progress or SilentProgress()
    run_dir = Path(cfg.out)
    specs = plan_trials(cfg)
    settings = shared_settings(cfg)
    executor = get_executor(cfg.executor)(cfg)  # connects first: a failure there writes nothing
    with executor_closed(executor), ResultStore(run_dir) as store:
        _check_same_settings(store, settings, run_dir)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        store.add_trials(s.to_row() for s in specs)
        by_id = {s.trial_id: s for s in specs}
        todo = [by_id[t.trial_id] for t in store.to_run(retry_failed) if t.trial_id in by_id]
        progress.start(total=len(specs), already_done=len(specs) - len(todo))
        try:
            if todo:
                if cfg.threads:
                    torch.set_num_threads(cfg.threads)
                artifacts = ArtifactStore(cfg.storage or run_dir) if cfg.save_models else None
                data = load_dataset(cfg.dataset, seed=cfg.seed)
                executor(SweepJob(cfg, todo, settings, run_dir, data, store, progress, artifacts))
        finally:
            progress.stop()
    return run_dir
