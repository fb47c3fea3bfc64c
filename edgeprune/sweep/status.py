"""What a sweep is doing, read from its store (works from another terminal)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import rate_label
from ..lock import Holder, driver_alive
from ..run import RunFolder


@dataclass
class SweepStatus:
    counts: dict[str, int]
    running: list[tuple[str, float]]      # (trial, seconds since it started)
    mean_trial_seconds: Optional[float]
    eta_seconds: Optional[float]
    driver_alive: bool = False
    driver: Optional[Holder] = None       # who holds (or last held) the run folder

    @property
    def over(self) -> bool:
        """Nothing will change unless a sweep is started: done, or no driver alive."""
        return not self.driver_alive or (self.counts["running"] + self.left == 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def left(self) -> int:
        return self.counts["pending"] + self.counts["cancelled"]

    def line(self) -> str:
        c = self.counts
        if self.driver_alive:
            eta = f", ETA {_duration(self.eta_seconds)}" if self.eta_seconds is not None else ""
            return (f"{c['done']}/{self.total} done, {c['running']} running, {c['failed']} failed, {self.left} left"
                    f"{eta}" + (f" (sweep: {self.driver.describe()})" if self.driver else ""))
        # no sweep holds the folder: a trial marked running was interrupted (kill -9, a crash), not running
        interrupted = c["running"]
        line = (f"{c['done']}/{self.total} done, {c['failed']} failed, "
                + (f"{interrupted} interrupted, " if interrupted else "") + f"{self.left} left")
        if interrupted or self.left:
            seen = (f" (its last sweep, {self.driver.describe()}, was last seen {_duration(self.driver.age)} ago)"
                    if self.driver else "")
            return line + f"; no sweep is running{seen}: run the same sweep command to resume"
        return line


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def sweep_status(run_dir: str | Path) -> SweepStatus:
    with RunFolder(run_dir).store() as store:
        trials = store.trials()
        counts = store.counts()
    now = time.time()
    durations = [t.finished_at - t.started_at for t in trials
                 if t.status == "done" and t.started_at and t.finished_at]
    running = [(f"{t.model} {t.algorithm} {rate_label(t.algorithm, t.target_kind, t.rate)}", now - (t.started_at or now))
               for t in trials if t.status == "running"]
    mean = statistics.mean(durations) if durations else None
    eta = None
    if mean is not None:
        parallel = max(1, len(running))
        remaining = counts["pending"] + counts["cancelled"] + len(running) * 0.5
        eta = mean * remaining / parallel
    alive, holder = driver_alive(run_dir)
    return SweepStatus(counts, running, mean, eta, alive, holder)
