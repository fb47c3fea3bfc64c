"""What a search (`edgeprune find`) leaves in its run folder besides its trials: the rungs, each
candidate's trials and why it stopped, the winner. The controller alone writes it
(results.db's meta `search`); the report and `find` read it back."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .lock import RunLock
from .run import RunFolder

META_KEY = "search"

# why a search ended
CONVERGED, BUDGET, LAST_RUNG, NONE_LEFT = "converged", "budget spent", "last rung of the plan", "no candidate left"


@dataclass
class CandidateRecord:
    label: str
    trials: list[str]                       # its screen trial, then one per rung it reached
    baseline: bool = False
    stopped: Optional[str] = None           # why it went no further (None: it reached the last rung run)
    stopped_at: Optional[int] = None        # the rung it stopped after (0: the screen)
    scores: list[float] = field(default_factory=list)


@dataclass
class RungRecord:
    rung: int
    steps: int                              # fine-tune steps each candidate added in this rung
    candidates: list[str]
    promoted: list[str] = field(default_factory=list)


@dataclass
class SearchRecord:
    goals: str
    objective: str
    plan: dict
    candidates: dict[str, CandidateRecord] = field(default_factory=dict)
    rungs: list[RungRecord] = field(default_factory=list)
    winner: Optional[str] = None            # the winner's trial id
    ended: Optional[str] = None
    steps_spent: int = 0
    seconds: float = 0.0                    # wall time over every start of the search

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "SearchRecord":
        d = dict(d)
        d["candidates"] = {k: CandidateRecord(**v) for k, v in d.get("candidates", {}).items()}
        d["rungs"] = [RungRecord(**r) for r in d.get("rungs", [])]
        return cls(**d)

    def stop(self, key: str, reason: str, rung: int) -> None:
        c = self.candidates[key]
        if c.stopped is None:
            c.stopped, c.stopped_at = reason, rung


def read(run_dir: str | Path) -> Optional[SearchRecord]:
    run = RunFolder(run_dir)
    if not run.exists():
        return None
    with run.store() as store:
        raw = store.get_meta(META_KEY)
    return SearchRecord.from_json(raw) if raw else None


def write(run_dir: str | Path, record: SearchRecord) -> None:
    run = RunFolder(run_dir)
    with RunLock(run.path), run.store(readonly=False) as store:
        store.set_meta(META_KEY, record.to_json())


class Clock:
    """Wall time of the search over all its starts (a resumed search goes on counting)."""

    def __init__(self, before: float):
        self.before, self.start = before, time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.start
