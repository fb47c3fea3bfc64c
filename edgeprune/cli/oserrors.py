"""A file-system refusal as one line that names the path and the fix (what `main`
prints instead of a traceback)."""
from __future__ import annotations

import errno
import os

FIXES = {
    errno.EACCES: "permission denied; make it accessible to this user, or choose another path",
    errno.EPERM: "not permitted; make it accessible to this user, or choose another path",
    errno.EROFS: "on a read-only file system; choose a writable place (--out / -o)",
    errno.EISDIR: "is a folder; name a file",
    errno.ENOTDIR: "a part of this path is a file, not a folder; check the path",
    errno.ENOENT: "not found; check the path",
    errno.ENOSPC: "the disk is full; free some space, then run the same command again",
}


def describe(e: OSError) -> str:
    path = e.filename if e.filename is not None else "?"
    fix = FIXES.get(e.errno, f"{os.strerror(e.errno) if e.errno else type(e).__name__}; check the path")
    return f"{str(path)!r}: {fix}"
