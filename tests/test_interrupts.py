"""Ctrl-C is remembered even where a library swallows the KeyboardInterrupt (edgeprune.interrupts).
The signal is sent in a child process: never to the test runner itself."""
import subprocess
import sys

CHILD = """
import os, signal, time
from edgeprune import interrupts
before = signal.getsignal(signal.SIGINT)
with interrupts.recorded():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)                      # the handler runs here
    except KeyboardInterrupt:
        pass                                 # as a Ray call may, returning one of its own errors
    assert interrupts.requested()
    try:
        interrupts.check()                   # what the Ray executor asks after each call
        raise SystemExit("check() did not raise")
    except KeyboardInterrupt:
        pass
assert not interrupts.requested() and signal.getsignal(signal.SIGINT) is before
interrupts.check()                           # outside, and after: nothing pending
print("ok")
"""


def test_ctrl_c_is_remembered_even_when_a_library_swallows_it():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
