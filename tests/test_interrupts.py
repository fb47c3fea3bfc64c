"""Ctrl-C is remembered even where a library swallows the KeyboardInterrupt (edgeprune.interrupts)."""
import os
import signal
import time

import pytest

from edgeprune import interrupts


def test_ctrl_c_is_remembered_even_when_a_library_swallows_it():
    before = signal.getsignal(signal.SIGINT)
    with interrupts.recorded():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)                  # the handler runs here
        except KeyboardInterrupt:
            pass                             # as a Ray call may, returning one of its own errors
        assert interrupts.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()               # what the Ray executor asks after each call
    assert not interrupts.requested() and signal.getsignal(signal.SIGINT) is before
    interrupts.check()                       # outside, and after: nothing pending
