"""What executors report while they run a sweep's tasks. Executors only emit these;
the engine alone turns them into store writes and progress."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .plan import TrialTask


@dataclass
class Started:
    task: TrialTask             # a task began (again, on a retry)


@dataclass
class Finished:
    task: TrialTask
    rows: dict[str, dict]                       # trial id -> metrics, every recorded row that succeeded
    errors: dict[str, str] = field(default_factory=dict)   # variant trial id -> why it failed
    model: Optional[bytes] = None               # the kept model (task.keep_model), for the engine to write


@dataclass
class Failed:
    task: TrialTask
    error: str                  # one line: why the trained trial failed (its variants fail with it)


Event = Started | Finished | Failed
