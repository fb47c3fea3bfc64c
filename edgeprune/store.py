"""The results store: one SQLite file per run folder, one row per trial.

Each state change is its own transaction, committed the moment it happens, so
a crash loses at most the trial that was running; WAL mode lets `show` and
`report` read while a sweep writes.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from .errors import EdgepruneError

DB_NAME = "results.db"
STATUSES = ("pending", "running", "done", "failed", "cancelled")
UNFINISHED = ("pending", "running", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    trial_id    TEXT PRIMARY KEY,
    position    INTEGER NOT NULL,
    model       TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    rate        REAL NOT NULL,
    seed        INTEGER NOT NULL,
    spec        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending','running','done','failed','cancelled')),
    metrics     TEXT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS trials_status ON trials (status);
"""


@dataclass
class TrialRecord:
    trial_id: str
    position: int
    model: str
    algorithm: str
    target_kind: str
    rate: float
    seed: int
    spec: dict
    status: str
    metrics: dict
    error: Optional[str]
    attempts: int
    started_at: Optional[float]
    finished_at: Optional[float]


def db_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / DB_NAME


class ResultStore:
    def __init__(self, path: str | Path, create: bool = True):
        path = Path(path)
        if path.is_dir() or path.suffix != ".db":
            path = db_path(path)
        if not create and not path.is_file():
            raise EdgepruneError(f"no results at {str(path.parent)!r} (missing {DB_NAME}); "
                                 "pass the run folder a sweep wrote (its `out:`)")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row["value"]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- trials --------------------------------------------------------------
    def add_trials(self, trials: Iterable[dict]) -> int:
        """Insert planned trials (dicts with trial_id, model, algorithm, target_kind,
        rate, seed, spec); ones already stored are left as they are."""
        now = time.time()
        with self._tx() as c:
            start = c.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM trials").fetchone()[0]
            added = 0
            for t in trials:
                cur = c.execute(
                    "INSERT OR IGNORE INTO trials (trial_id, position, model, algorithm, target_kind, rate, seed,"
                    " spec, status, created_at) VALUES (?,?,?,?,?,?,?,?, 'pending', ?)",
                    (t["trial_id"], start + added, t["model"], t["algorithm"], t["target_kind"], t["rate"],
                     t["seed"], json.dumps(t["spec"], sort_keys=True), now))
                added += cur.rowcount
        return added

    def _set(self, trial_id: str, sql: str, args: tuple) -> None:
        with self._tx() as c:
            c.execute(f"UPDATE trials SET {sql} WHERE trial_id=?", (*args, trial_id))

    def mark_running(self, trial_id: str) -> None:
        self._set(trial_id, "status='running', attempts=attempts+1, started_at=?, error=NULL", (time.time(),))

    def mark_done(self, trial_id: str, metrics: dict) -> None:
        # insertion order kept: layer_channels lists layers in the model's order
        self._set(trial_id, "status='done', metrics=?, error=NULL, finished_at=?",
                  (json.dumps(metrics), time.time()))

    def mark_failed(self, trial_id: str, error: str) -> None:
        self._set(trial_id, "status='failed', error=?, finished_at=?", (error, time.time()))

    def mark_cancelled(self, trial_id: str, reason: str = "cancelled") -> None:
        self._set(trial_id, "status='cancelled', error=?, finished_at=?", (reason, time.time()))

    def to_run(self, retry_failed: bool = False) -> list[TrialRecord]:
        """Trials a (resumed) sweep still has to run, in plan order."""
        wanted = UNFINISHED + (("failed",) if retry_failed else ())
        return [t for t in self.trials() if t.status in wanted]

    def trials(self, status: Optional[str] = None) -> list[TrialRecord]:
        sql = "SELECT * FROM trials" + (" WHERE status=?" if status else "") + " ORDER BY position"
        rows = self._conn.execute(sql, (status,) if status else ()).fetchall()
        return [TrialRecord(r["trial_id"], r["position"], r["model"], r["algorithm"], r["target_kind"], r["rate"],
                            r["seed"], json.loads(r["spec"]), r["status"], json.loads(r["metrics"] or "{}"),
                            r["error"], r["attempts"], r["started_at"], r["finished_at"]) for r in rows]

    def counts(self) -> dict[str, int]:
        found = dict(self._conn.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall())
        return {s: found.get(s, 0) for s in STATUSES}

    def integrity_ok(self) -> bool:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def to_dataframe(self):
        """All trials as a flat pandas DataFrame: identity columns, then every scalar metric."""
        import pandas as pd
        rows = []
        for t in self.trials():
            row = {"trial_id": t.trial_id, "model": t.model, "algorithm": t.algorithm,
                   "target_kind": t.target_kind, "rate": t.rate, "seed": t.seed, "status": t.status,
                   "error": t.error}
            row.update({k: v for k, v in t.metrics.items() if not isinstance(v, (dict, list))})
            rows.append(row)
        return pd.DataFrame(rows)


def load_results(run_dir: str | Path):
    """The trials of a run folder as a pandas DataFrame (one row per trial)."""
    with ResultStore(run_dir, create=False) as store:
        return store.to_dataframe()
