"""Executors run a sweep's unfinished trials and hand each result to the store.

  local  one after another, in this process (debugging, tests, one small machine)
  ray    in parallel on a local Ray instance or an existing Ray cluster
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ...artifacts import ArtifactStore
from ...config import SweepConfig
from ...data import DataSplits
from ...registry import Registry
from ...store import ResultStore
from ..plan import TrialSpec
from ..progress import SilentProgress


@dataclass
class SweepJob:
    """Everything an executor needs to run a batch of trials."""
    cfg: SweepConfig
    specs: list[TrialSpec]
    settings: dict
    run_dir: Path
    data: DataSplits
    store: ResultStore
    progress: SilentProgress
    artifacts: Optional[ArtifactStore]


EXECUTORS: Registry = Registry("executor")


def get_executor(name: str):
    if name == "ray" and name not in EXECUTORS:
        from . import ray_executor  # noqa: F401  (imports ray only when asked for)
    return EXECUTORS.get(name)


from . import local  # noqa: E402,F401  (registers "local")
