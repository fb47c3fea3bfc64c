"""A time limit for a step that may never return (Torch-Pruning's group search on
some transformer graphs): the step is interrupted and fails its trial with a reason,
instead of hanging the sweep."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Optional

from ..errors import RunError


class StepTimeout(RunError):
    """A step ran past its time limit."""


@contextmanager
def time_limit(seconds: Optional[float], what: str, fix: str):
    """Raise StepTimeout if the block runs longer than `seconds` (SIGALRM: on Unix, in
    a process's main thread, which is where local trials and Ray tasks run; elsewhere
    the block runs without a limit)."""
    usable = seconds and hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expired(signum, frame):
        raise StepTimeout(f"{what} took more than {seconds:g} s; {fix}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
