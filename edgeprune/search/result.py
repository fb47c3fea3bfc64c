"""What `find` answers: the winner beside the goals, how the search went, and the
winner's files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from ..errors import EdgepruneError, first_line
from ..recommend import show_metric
from .goals import Goals
from ..search_record import SearchRecord

_SHOWN = ["accuracy", "accuracy_drop", "latency_ms", "size_bytes", "params", "macs"]


@dataclass
class FindResult:
    run_dir: Path
    record: SearchRecord
    goals: Goals
    trials: pd.DataFrame                  # every trial of the run (load_runs), indexed by trial id
    release: Optional[object] = None      # the winner's ReleaseResult
    export_error: Optional[str] = None

    @property
    def winner(self) -> Optional[pd.Series]:
        return None if self.record.winner is None else self.trials.loc[self.record.winner]

    def closest(self) -> Optional[pd.Series]:
        """Without a winner: the candidate's result that misses the fewest goals (then the most accurate)."""
        keys = [c.trials[-1] for c in self.record.candidates.values() if c.trials[-1] in self.trials.index]
        rows = [self.trials.loc[k] for k in keys if self.trials.loc[k].get("status") == "done"]
        if not rows:
            return None
        return min(rows, key=lambda r: (len(self.goals.misses(r)), -float(r.get("accuracy") or 0)))

    def format(self) -> str:
        r = self.record
        fine_tuned = {k for rung in r.rungs for k in rung.candidates}
        lines = [f"search: {len(r.candidates)} candidates screened, {len(fine_tuned)} fine-tuned in "
                 f"{len(r.rungs)} rung(s), {r.steps_spent:,} fine-tune steps, {r.seconds / 60:.1f} min; "
                 f"ended: {r.ended}"]
        for rung in r.rungs:
            lines.append(f"  rung {rung.rung}: {len(rung.candidates)} candidate(s) x {rung.steps} steps, "
                         f"{len(rung.promoted)} went on")
        row = self.winner
        if row is None:
            near = self.closest()
            lines.append(f"no candidate meets {self.goals.describe()}")
            if near is not None:
                lines.append(f"  the closest: {_name(near)}: misses {'; '.join(self.goals.misses(near))}")
            return "\n".join(lines) + "\n"
        lines.append(f"winner: {_name(row)} (trial {row['trial_id'][:8]})")
        goal_of = {g.metric: g for g in self.goals.goals}
        for metric in _SHOWN:
            value = row.get(metric)
            if pd.isna(value) if not isinstance(value, str) else False:
                continue
            goal = goal_of.get(metric)
            where = f" on {row.get('latency_backend')}" if metric == "latency_ms" and row.get("latency_backend") else ""
            lines.append(f"  {metric:<14}{show_metric(metric, value):>14}{where}"
                         + (f"   goal {'≤' if goal.constraint.upper else '≥'} {goal.constraint.show()}" if goal
                            else ""))
        if self.release is not None:
            files = ", ".join(sorted(p.name for p in self.release.files.values()))
            lines.append(f"exported, verified: {self.release.out_dir} ({files})")
        elif self.export_error:
            lines.append(f"not exported: {self.export_error}")
        return "\n".join(lines) + "\n"


def _name(row: pd.Series) -> str:
    from ..config import BASELINE
    what = "unpruned" if row["algorithm"] == BASELINE else f"{row['algorithm']} @ {row['rate_label']}"
    return f"{row['model']} {what}"


def export_winner(cfg, trial_id: str):
    """The winner's files for its runtime (ONNX, plus the latency goal's runtime's own
    format where there is one), each verified, with deploy.json and the model card."""
    from ..registry import RELEASE_FORMATS
    from ..release import release_trial
    formats = ["onnx"]
    backends = cfg.measure.latency_backends()
    runtime = (backends[0].runtime or "onnxruntime") if backends and backends[0].device else \
        (backends[0].backend if backends else None)
    if runtime and runtime in RELEASE_FORMATS and runtime not in formats:
        formats.append(runtime)
    try:
        return release_trial(cfg.out, trial_id, formats=formats), None
    except EdgepruneError as e:
        return None, first_line(e)
