"""A disk that fills up mid-sweep: recognised wherever it shows (an OSError with
ENOSPC, SQLite's "database or disk is full", a library's own wording), turned into
one error that names the disk, the folder and the space, and stops the sweep. What
finished is kept; the trial that was writing is not failed, and runs again when the
same command resumes.

    raise disk_full_error(folder, needed=len(data))       # where the size is known
    full = disk_full(exc, [run_dir, scratch.root()])      # a DiskFull, or None
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional

from .errors import EdgepruneError, RunError
from .metrics import short_bytes
from .scratch import root as scratch_root

FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
FULL_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded")
# A write that failed on a disk with less than this free failed for want of space, whatever
# the library made of the error (torch.save says "unexpected pos ..." and drops errno).
LOW_SPACE_BYTES = 1_000_000


class DiskFull(RunError):
    """A disk filled up: the sweep stops, and the same command resumes it."""


def _existing(path: Path) -> Path:
    """The nearest folder of `path` that exists (what disk usage can be asked of)."""
    path = Path(path).absolute()
    for p in (path, *path.parents):
        if p.exists():
            return p if p.is_dir() else p.parent
    return Path(path.anchor or "/")


def mount_point(path: Path) -> Path:
    p = _existing(path).resolve()
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(_existing(path)).free


def disk_full_error(folder: str | Path, needed: Optional[int] = None) -> DiskFull:
    """The one-line error for a disk that is full under `folder`."""
    folder = Path(folder).absolute()
    free = free_bytes(folder)
    space = f"it needed {short_bytes(needed)}, {short_bytes(free)} free" if needed else f"{short_bytes(free)} free"
    temporary = _inside(folder, scratch_root().resolve())      # temporary model files, not the run's
    elsewhere = "set TMPDIR to a folder on a larger disk" if temporary else "use an --out on a larger disk"
    return DiskFull(f"the disk mounted at {mount_point(folder)} is full: writing in {folder} ({space}); free some "
                    f"space on it (or {elsewhere}), then run the same command again: the sweep resumes where it "
                    "stopped")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def says_full(exc: BaseException) -> Optional[BaseException]:
    """The exception in `exc`'s chain that says a disk is full, if one does."""
    for e in _chain(exc):
        if isinstance(e, DiskFull):
            return e
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return e
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return e
        if any(w in str(e).lower() for w in FULL_WORDS):
            return e
    return None


def _local(folders: Iterable) -> list[Path]:
    out = []
    for f in folders:
        text = str(f) if f else ""
        if not text or ("://" in text and not text.startswith("file://")):
            continue
        out.append(Path(text.removeprefix("file://")))
    return out


def disk_full(exc: BaseException, folders: Iterable) -> Optional[DiskFull]:
    """`exc` as a DiskFull when it comes of a full disk: its chain says so, or one of
    `folders` (the run folder, the scratch root) is (nearly) out of space. None else."""
    cause = says_full(exc)
    if isinstance(cause, DiskFull):
        return cause
    if cause is None and isinstance(exc, EdgepruneError):
        return None       # an error of ours that names its cause (bad input) is that, whatever the free space
    local = _local(folders)
    try:
        spaces = sorted((free_bytes(f), str(f)) for f in local)
    except OSError:
        spaces = []
    low = [f for free, f in spaces if free < LOW_SPACE_BYTES]
    if cause is None and not low:
        return None
    named = getattr(cause, "filename", None)
    if named:
        # the watched folder the file is in names it better than the file's own folder
        holder = [f for f in local if _inside(Path(named), Path(f).resolve())]
        folder = holder[0] if holder else Path(named).parent
    else:
        folder = low[0] if low else (spaces[0][1] if spaces else tempfile.gettempdir())
    return disk_full_error(folder)


@contextlib.contextmanager
def stops_on_full_disk(folders: Iterable) -> Iterator[None]:
    """Turn what a full disk under `folders` raises into one DiskFull."""
    folders = list(folders)
    try:
        yield
    except Exception as e:
        full = disk_full(e, folders)
        if full is None or full is e:
            raise
        raise full from None
