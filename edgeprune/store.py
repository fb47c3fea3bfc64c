"""The results store: one SQLite file per run folder, one row per trial.

Each state change is its own transaction, committed the moment it happens, so a
crash loses at most the trials that were running; WAL mode lets `show` and
`report` read while a sweep writes. Only the sweep engine writes. A finished
(`done`) trial is immutable: the store refuses to change it. The file records its
schema version and the version of the trial-identity rule that made its ids.

Opened with `readonly=True` (what show, export, report and status do) the store
writes nothing, works in a read-only folder, and a damaged or foreign file is
reported in one line instead of being changed.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from .diskspace import disk_full
from .errors import EdgepruneError

DB_NAME = "results.db"
STATUSES = ("pending", "running", "done", "failed", "cancelled")
UNFINISHED = ("pending", "running", "cancelled")
SCHEMA_VERSION = 2          # 1: before the version was recorded (same tables)
IDENTITY_VERSION = 1        # how trial ids are derived (sweep.plan.TrialSpec.trial_id)

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
_COLUMNS = {"trial_id", "position", "model", "algorithm", "target_kind", "rate", "seed", "spec", "status",
            "metrics", "error", "attempts", "created_at", "started_at", "finished_at"}


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


class FinishedTrialError(EdgepruneError):
    """An attempt to change a trial that is already done."""


def db_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / DB_NAME


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing, not even SQLite's -wal / -shm side files:
    a checkpointed store (no -wal file: no sweep is writing) is opened immutable;
    while a -wal file exists (a live sweep, or a crash) it is read with it."""
    uri = path.resolve().as_uri()
    if not Path(str(path) + "-wal").exists():
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=30, isolation_level=None)
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return conn
    except sqlite3.OperationalError:    # a read-only folder with a crash's -wal left in it
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=30, isolation_level=None)


class ResultStore:
    def __init__(self, path: str | Path, create: bool = True, readonly: bool = False):
        path = Path(path)
        if path.is_dir() or path.suffix != ".db":
            path = db_path(path)
        if (not create or readonly) and not path.is_file():
            raise EdgepruneError(f"no results at {str(path.parent)!r} (missing {DB_NAME}); "
                                 "pass the run folder a sweep wrote (its `out:`)")
        self.path, self.readonly = path, readonly
        try:
            if readonly:
                self._conn = _connect_readonly(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._check_foreign(path, new=create and not readonly)
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)
                if self.get_meta("schema_version") is None:
                    self._put_meta("schema_version", SCHEMA_VERSION)
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            full = disk_full(e, [path.parent])    # on a full disk SQLite may say "disk I/O error" (-shm)
            if full is not None:
                raise full from None
            raise EdgepruneError(f"{str(path)!r} is damaged ({e}); restore it from a copy, or start the sweep "
                                 "in another --out") from None
        version = self.get_meta("schema_version")
        if version is not None and int(version) > SCHEMA_VERSION:
            self._close_quietly()
            raise EdgepruneError(f"{str(path)!r} was written by a newer edgeprune (store schema {version}, this "
                                 f"one reads up to {SCHEMA_VERSION}); upgrade edgeprune to read it")

    def _check_foreign(self, path: Path, new: bool) -> None:
        """Refuse a SQLite file that is not ours (before adding tables to it)."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables and new:
            return
        if not {"meta", "trials"} <= tables:
            raise EdgepruneError(f"{str(path)!r} is not an edgeprune results store (its tables: "
                                 f"{', '.join(sorted(tables)) or 'none'}); point at a run folder a sweep wrote, "
                                 "or use another --out")
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(trials)")}
        if not _COLUMNS <= columns:
            raise EdgepruneError(f"{str(path)!r} is not an edgeprune results store (its trials table lacks "
                                 f"{', '.join(sorted(_COLUMNS - columns))})")

    def _close_quietly(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - already failing
            pass

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise EdgepruneError(f"{self.path} is open read-only")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:    # SQLite rolls back by itself on some errors (a full disk)
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass                     # the first error is the one to report
                raise
        except sqlite3.OperationalError as e:
            full = disk_full(e, [self.path.parent])    # nothing of the change was written: the file stays whole
            if full is not None:
                raise full from None
            raise

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row["value"]) if row else None

    def _put_meta(self, key: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx():
            self._put_meta(key, value)

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

    def _set(self, c: sqlite3.Connection, trial_id: str, sql: str, args: tuple) -> None:
        cur = c.execute(f"UPDATE trials SET {sql} WHERE trial_id=? AND status != 'done'", (*args, trial_id))
        if cur.rowcount == 0:
            row = c.execute("SELECT status FROM trials WHERE trial_id=?", (trial_id,)).fetchone()
            if row is None:
                raise EdgepruneError(f"no trial {trial_id} in {self.path}")
            raise FinishedTrialError(f"trial {trial_id} is done; finished trials are never changed")

    def _update(self, trial_id: str, sql: str, args: tuple) -> None:
        with self._tx() as c:
            self._set(c, trial_id, sql, args)

    def mark_running(self, trial_id: str) -> None:
        self._update(trial_id, "status='running', attempts=attempts+1, started_at=?, error=NULL", (time.time(),))

    def mark_done(self, trial_id: str, metrics: dict) -> None:
        self.finish({trial_id: metrics})

    def finish(self, results: dict[str, dict]) -> None:
        """Mark several trials done at once (a trial and its variants): all or none."""
        now = time.time()
        with self._tx() as c:
            for trial_id, metrics in results.items():
                # insertion order kept: layer_channels lists layers in the model's order
                self._set(c, trial_id, "status='done', metrics=?, error=NULL, finished_at=?, "
                                       "started_at=COALESCE(started_at, ?)", (json.dumps(metrics), now, now))

    def mark_failed(self, trial_id: str, error: str) -> None:
        self._update(trial_id, "status='failed', error=?, finished_at=?", (error, time.time()))

    def mark_cancelled(self, trial_id: str, reason: str = "cancelled") -> None:
        self._update(trial_id, "status='cancelled', error=?, finished_at=?", (reason, time.time()))

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
