"""A search's rungs, drawn (`edgeprune find`): each candidate's accuracy at the
screen (cut and rebuilt, no fine-tuning) and after each rung it reached, against
the fine-tune steps it had had; where a candidate stopped, and the winner."""
from __future__ import annotations

from typing import Optional

import pandas as pd

from ..search_record import SearchRecord, read
from .figures import Figure, Panel, Trace, empty

WINNER_COLOR, KEPT_COLOR, STOPPED_COLOR, BASELINE_COLOR = "#D62728", "#1F77B4", "#BBBBBB", "#222222"


def search_records(data) -> dict[str, SearchRecord]:
    """run label -> its search record, for the runs that are searches."""
    out = {}
    for run in data.runs:
        record = read(run.path)
        if record is not None:
            out[run.label] = record
    return out


def search_rungs(df: pd.DataFrame, records: dict[str, SearchRecord], fig_id: str) -> Figure:
    if not records:
        return empty(fig_id, "not a search (edgeprune find)")
    by_id = df.set_index("trial_id") if "trial_id" in df else pd.DataFrame()
    panels = []
    for label, record in records.items():
        panel = Panel(title=label if len(records) > 1 else "", xtitle="fine-tune steps (cumulative)",
                      ytitle="top-1 accuracy (%)")
        for key, c in record.candidates.items():
            points = [(float(by_id.loc[t].get("chain_steps") or 0), 100 * float(by_id.loc[t]["accuracy"]), t)
                      for t in c.trials if t in by_id.index and not pd.isna(by_id.loc[t].get("accuracy"))]
            if not points:
                continue
            won = record.winner in c.trials
            color = WINNER_COLOR if won else BASELINE_COLOR if c.baseline else \
                STOPPED_COLOR if c.stopped else KEPT_COLOR
            why = f"stopped after {'the screen' if c.stopped_at == 0 else f'rung {c.stopped_at}'}: {c.stopped}" \
                if c.stopped else ("the winner" if won else "reached the last rung run")
            panel.traces.append(Trace([p[0] for p in points], [p[1] for p in points], c.label, "lines+markers",
                                      color, symbol="star" if won else "x" if c.stopped else "circle",
                                      size=12 if won else 7, keys=[p[2] for p in points], legend=won,
                                      group="winner" if won else None,
                                      hover=[f"{c.label}<br>{p[1]:.2f}% after {p[0]:.0f} steps<br>{why}"
                                             for p in points]))
        panels.append(panel)
    # red: the winner; blue: reached the last rung run; grey: stopped; black: unpruned (the page says so)
    return Figure(fig_id, "Search: each candidate's accuracy by rung", panels, cols=1, legend_title="")


def rung_rows(record: SearchRecord) -> list[dict]:
    return [{"rung": r.rung, "steps": r.steps, "candidates": len(r.candidates), "went_on": len(r.promoted)}
            for r in record.rungs]


def candidate_rows(record: SearchRecord, df: pd.DataFrame) -> list[dict]:
    by_id = df.set_index("trial_id") if "trial_id" in df else pd.DataFrame()

    def acc(trial: Optional[str]) -> str:
        if trial is None or trial not in by_id.index or pd.isna(by_id.loc[trial].get("accuracy")):
            return "–"
        return f"{100 * float(by_id.loc[trial]['accuracy']):.2f}"

    rows = []
    for c in record.candidates.values():
        rows.append({"candidate": c.label, "screen": acc(c.trials[0]), "rungs": len(c.trials) - 1,
                     "last": acc(c.trials[-1]), "winner": record.winner in c.trials,
                     "why": c.stopped or ("unpruned: not fine-tuned" if c.baseline else "went through")})
    return sorted(rows, key=lambda r: (not r["winner"], -r["rungs"], r["candidate"]))
