"""Scratch space for temporary model files (ONNX exports, int8 models, compiled
runtimes): one folder per process under one edgeprune root in the temp dir,

    $TMPDIR/edgeprune-scratch-UID/PID-XXXX/      .owner (flock-ed while the process lives)

so that nothing is left behind however a process ends:

- a process removes its own folder when it exits (atexit);
- a process that was killed (kill -9, a Ray worker ended by its raylet, a lost
  node) cannot, but its lock died with it: the next process that makes a scratch
  folder, every sweep's start and its end remove the folders whose lock is free;
- a sweep's driver waits for the folders of the Ray workers it started to be freed
  (`remove_when_free`), so that its own end leaves nothing.

A finalizer on each temporary object is not enough: it never runs in a process
that is killed, and the unpruned model's reference files live as long as the
process that made them.
"""
from __future__ import annotations

import atexit
import contextlib
import getpass
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

from .errors import EdgepruneError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: folders of killed processes stay until removed by hand
    fcntl = None

OWNER = ".owner"
UNLOCKED_GRACE_SECONDS = 60.0     # a folder without its .owner yet may be one being made right now

_lock = threading.Lock()
_mine: Optional["_Folder"] = None


def _root_name() -> str:
    return f"edgeprune-scratch-{os.getuid() if hasattr(os, 'getuid') else getpass.getuser()}"


def root() -> Path:
    """The edgeprune scratch root in the temp dir (inside it already while `as_tempdir`
    points the temp dir at a scratch folder)."""
    base = Path(tempfile.gettempdir())
    for p in (base, *base.parents):
        if p.name == _root_name():
            return p
    return base / _root_name()


def _own_root() -> Path:
    """The root, made private to this user: in a shared /tmp another user could have
    made it (or a link) first, to read or plant model files."""
    path = root()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not path.is_dir() or path.is_symlink() or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
        raise EdgepruneError(f"the scratch folder {str(path)!r} is not a folder of this user; remove it, or set "
                             "TMPDIR to another temporary folder")
    return path


class _Folder:
    """This process's scratch folder, locked while the process lives."""

    def __init__(self, base: Path):
        self.pid = os.getpid()
        self.path = Path(tempfile.mkdtemp(prefix=f"{self.pid}-", dir=base))
        # locked under another name first: a cleaner must never find an .owner not yet locked
        pending = self.path / (OWNER + ".new")
        self._fd = os.open(pending, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.write(self._fd, f"pid {self.pid} on {socket.gethostname()} since {time.ctime()}\n".encode())
        os.rename(pending, self.path / OWNER)

    def remove(self) -> None:
        if os.getpid() != self.pid:   # a forked child shares the lock, not the folder
            return
        shutil.rmtree(self.path, ignore_errors=True)
        try:
            os.close(self._fd)
        except OSError:
            pass


def folder() -> Path:
    """This process's scratch folder (made on first use, after removing the folders
    of processes that are gone)."""
    global _mine
    with _lock:
        if _mine is None or _mine.pid != os.getpid() or not _mine.path.is_dir():
            if _mine is not None:
                _mine.remove()          # removed from under us: let go of its lock too
            base = _own_root()
            remove_stale(base)
            _mine = _Folder(base)
            atexit.register(_mine.remove)
        return _mine.path


def current() -> Optional[Path]:
    """This process's scratch folder if it made one (what a Ray worker reports)."""
    return _mine.path if _mine is not None and _mine.pid == os.getpid() else None


def _take(path: Path) -> Optional[int]:
    """The lock of a scratch folder whose owner is gone (an open descriptor holding
    it), or None while its owner lives."""
    try:
        fd = os.open(path / OWNER, os.O_RDWR)
    except FileNotFoundError:
        return None
    if fcntl is None:
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _remove_if_free(path: Path) -> bool:
    """Remove a scratch folder whose owner is gone; True when it is gone."""
    if not path.exists():
        return True
    if not (path / OWNER).exists():
        try:
            young = time.time() - path.stat().st_mtime < UNLOCKED_GRACE_SECONDS
        except FileNotFoundError:
            return True
        if young:
            return False
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    fd = _take(path)
    if fd is None:
        return False
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)
    return not path.exists()


def remove_stale(base: Optional[Path] = None) -> int:
    """Remove the scratch folders of processes that are gone; returns how many."""
    base = base or root()
    if not base.is_dir():
        return 0
    mine = current()
    removed = 0
    for path in base.iterdir():
        if path.is_dir() and path != mine and _remove_if_free(path):
            removed += 1
    return removed


def remove_when_free(paths: Iterable, timeout: float) -> list[Path]:
    """Wait up to `timeout` seconds for the owners of `paths` (scratch folders of
    processes that are ending, such as Ray workers after a shutdown) to be gone, and
    remove each folder as its owner goes; returns those still held."""
    left = {Path(p) for p in paths if p}
    deadline = time.monotonic() + timeout
    while True:
        left = {p for p in left if not _remove_if_free(p)}
        if not left or time.monotonic() >= deadline:
            return sorted(left)
        time.sleep(0.1)


def usage(base: Optional[Path] = None) -> tuple[int, int]:
    """(files, bytes) under the scratch root, .owner files left out: what is held now."""
    base = base or root()
    files = size = 0
    for dirpath, _, names in os.walk(base):
        for name in names:
            if name == OWNER:
                continue
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                pass
    return files, size


@contextlib.contextmanager
def as_tempdir() -> Iterator[Path]:
    """Point Python's temp dir at this process's scratch folder for a while: libraries
    that make their own temporary files (onnxruntime's quantizer) then make them here,
    where they are removed even when the process is killed. The temp dir is
    process-wide: use it around work that no other thread runs at the same time."""
    before = tempfile.tempdir
    tempfile.tempdir = str(folder())
    try:
        yield Path(tempfile.tempdir)
    finally:
        tempfile.tempdir = before


@contextlib.contextmanager
def tidied() -> Iterator[None]:
    """Remove the scratch folders of processes that are gone when the block ends
    (a sweep's end: its Ray workers', once they are)."""
    try:
        yield
    finally:
        remove_stale()
