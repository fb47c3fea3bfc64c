"""Ctrl-C that a library below cannot swallow. A SIGINT that lands inside a Ray call can
come back from it as one of Ray's own errors (which edgeprune handles, to survive a lost
worker) rather than as KeyboardInterrupt; the handler installed here also records it,
and loops that wait on such calls ask `requested()` after each one."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_requested = threading.Event()


def _handler(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, whatever caught it since."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextmanager
def recorded() -> Iterator[None]:
    """Within: Ctrl-C raises KeyboardInterrupt as usual and is remembered (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    before = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        _requested.clear()
