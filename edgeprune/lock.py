"""One sweep per run folder: an exclusive lock held by the live driver, with a
heartbeat, as Optuna's heartbeat-based storages keep trials honest.

RUN/.lock is locked with flock (on NFS, Linux maps it onto fcntl byte-range locks,
which NFSv4 servers honour); it also holds who holds it and when it last beat, so
that another sweep can name the holder, and `status` can tell whether a driver is
still alive even where locks are not shared between hosts. A trial is `running`
only while its driver lives: once a driver is gone its `running` trials are run
again by the next sweep, which holds the lock.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import EdgepruneError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: heartbeats only
    fcntl = None

LOCK_NAME = ".lock"
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = 4 * HEARTBEAT_SECONDS


@dataclass
class Holder:
    pid: int
    host: str
    started: float
    heartbeat: float

    @property
    def age(self) -> float:
        return time.time() - self.heartbeat

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host}, since {started}"


def read_holder(run_dir: str | Path) -> Optional[Holder]:
    try:
        d = json.loads((Path(run_dir) / LOCK_NAME).read_text())
        return Holder(int(d["pid"]), str(d["host"]), float(d["started"]), float(d["heartbeat"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def driver_alive(run_dir: str | Path) -> tuple[bool, Optional[Holder]]:
    """Whether a live sweep holds the folder (and who held it last)."""
    path = Path(run_dir) / LOCK_NAME
    holder = read_holder(run_dir)
    if not path.exists():
        return False, holder
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return holder is not None and holder.age < STALE_AFTER, holder
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False, holder            # nobody holds it
        except OSError:
            return True, holder
        finally:
            os.close(fd)
    return holder is not None and holder.age < STALE_AFTER, holder


class RunLock:
    """`with RunLock(run_dir): ...` holds the folder; a second sweep gets one line
    naming this one."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: Optional[int] = None
        self._stop = threading.Event()
        self._beat: Optional[threading.Thread] = None
        self._started = time.time()

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                holder = read_holder(self.path.parent)
                who = holder.describe() if holder else "another process"
                raise EdgepruneError(f"run folder {str(self.path.parent)!r} is in use by another sweep ({who}); "
                                     "wait for it to end (`edgeprune status` follows it) or use another --out")
        else:
            holder = read_holder(self.path.parent)
            if holder is not None and holder.age < STALE_AFTER and holder.pid != os.getpid():
                os.close(fd)
                raise EdgepruneError(f"run folder {str(self.path.parent)!r} is in use by another sweep "
                                     f"({holder.describe()}); wait for it to end or use another --out")
        self._fd = fd
        self._write()
        self._beat = threading.Thread(target=self._beating, name="edgeprune-heartbeat", daemon=True)
        self._beat.start()
        return self

    def _write(self) -> None:
        data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": self._started,
                           "heartbeat": time.time()}).encode()
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, data)

    def _beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._write()
            except OSError:
                pass

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=2)
        if self._fd is not None:
            try:
                if fcntl is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
