"""Who may hold the agent's connections, and for how long. Standard library only.

The design, against clients that are slow on purpose (a script that drips its
headers one byte at a time, from anywhere that can reach the port):

  * Two classes of connection. Every connection starts *waiting*: it has not shown
    a valid token yet (once its headers are in, it is *answering*, which takes
    milliseconds, and is not evicted meanwhile). Only a token holder's upload (POST /benchmark with the token)
    takes one of the `max_trusted` places; a waiting connection never does, so no
    number of anonymous connections can fill the places that a token holder needs.
  * Waiting connections have a short deadline of their own (`header_timeout`, from
    the accept, or from the previous answer on a kept-alive connection): the TLS
    handshake, the request line and the headers must all arrive by then, whatever
    each read takes. The upload has its own, longer deadline (`request_timeout`,
    from the end of the headers). Past a deadline, the socket is shut down, which
    ends the read in progress in the connection's thread.
  * Waiting connections are capped too (`max_waiting`), and a new connection never
    waits for room: the *oldest* waiting connection is cut off instead. A real client
    sends its headers in one packet, milliseconds after it connects; a dripper has
    been waiting longest by design. Connections with bytes not yet read go last: a
    dripper's thread reads each byte as it comes, so bytes that wait mean a client
    that sent its request at once and whose thread has not run yet (a busy CPU),
    not a slow client. To shut a token holder out, an attacker would have to open
    `max_waiting` connections within those milliseconds: a flood of the network,
    not a slow client, which no server-side design can absorb.
  * The accept loop only admits (a table entry, maybe one eviction) and starts a
    thread: it never reads, so nothing a client does can stall it.

Why threads with a deadline table and not an asyncio or selectors front: the
handlers stay plain `http.server` code (the agent must run from one stdlib-only file
on a Raspberry Pi), and threads cost memory only while they are capped as above: at
most `max_waiting` + `max_trusted` (+ token holders draining a refused upload).
One reaper thread enforces every deadline, instead of a timer thread per request.
"""
from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

WAITING, ANSWERING, TRUSTED, DRAINING, SETTLED = "waiting", "answering", "trusted", "draining", "settled"


@dataclass(eq=False)
class Entry:
    """One connection: its socket (to cut it off), class and deadline."""
    sock: socket.socket
    state: str = WAITING
    since: float = field(default_factory=time.monotonic)
    deadline: Optional[float] = None
    expired: bool = False        # cut off at its deadline, or evicted: answer nothing more


class Gate:
    def __init__(self, *, header_timeout: float, request_timeout: float, max_waiting: int, max_trusted: int):
        self.header_timeout, self.request_timeout = header_timeout, request_timeout
        self.max_waiting, self.max_trusted = max_waiting, max_trusted
        self._entries: list[Entry] = []
        self._lock = threading.Condition()
        self._closed = False
        self.evicted = self.timed_out = 0
        self._reaper = threading.Thread(target=self._reap, name="edgeprune-agent-deadlines", daemon=True)
        self._reaper.start()

    # -- the accept loop ---------------------------------------------------------------------------------------------
    def admit(self, sock: socket.socket) -> Entry:
        """A new connection, waiting for its headers; the oldest waiting one is cut off if there is no room."""
        entry = Entry(sock)
        entry.deadline = entry.since + self.header_timeout
        with self._lock:
            waiting = [e for e in self._entries if e.state == WAITING and not e.expired]
            if len(waiting) >= self.max_waiting:
                self._cut(_victim(waiting))
                self.evicted += 1
            self._entries.append(entry)
            self._lock.notify()
        return entry

    # -- a connection's thread -----------------------------------------------------------------------------------------
    def rebind(self, entry: Entry, sock: socket.socket) -> None:
        """The socket that now carries the connection (its TLS wrapper)."""
        with self._lock:
            entry.sock = sock
            if entry.expired:                  # cut off while it was being wrapped
                _shut(sock)

    def answering(self, entry: Entry) -> None:
        """Its headers are in: not to be evicted while it is answered (the header deadline still runs)."""
        with self._lock:
            if not entry.expired:
                entry.state = ANSWERING

    def anonymous(self, entry: Entry) -> None:
        """Back among the evictable ones (a client without the token whose body is read before its answer)."""
        with self._lock:
            if not entry.expired:
                entry.state = WAITING

    def trust(self, entry: Entry) -> bool:
        """A token holder's upload: take a place (False: all taken) with the upload deadline."""
        with self._lock:
            if entry.expired:
                return False
            if sum(e.state in (TRUSTED, SETTLED) for e in self._entries) >= self.max_trusted:
                return False
            entry.state, entry.deadline = TRUSTED, time.monotonic() + self.request_timeout
            self._lock.notify()
            return True

    def drain(self, entry: Entry) -> None:
        """A token holder refused for want of a place: it may still send the body it has
        started (so that it reads the answer), within the upload deadline, holding no place."""
        with self._lock:
            if not entry.expired:
                entry.state, entry.deadline = DRAINING, time.monotonic() + self.request_timeout
                self._lock.notify()

    def settle(self, entry: Entry) -> None:
        """The upload is whole: no deadline while the benchmark waits and runs (those have their own limits)."""
        with self._lock:
            if not entry.expired:
                entry.state, entry.deadline = SETTLED, None

    def wait_again(self, entry: Entry) -> None:
        """Answered, and kept alive: waiting for the next request's headers, place given back."""
        with self._lock:
            if not entry.expired:
                entry.state, entry.since = WAITING, time.monotonic()
                entry.deadline = entry.since + self.header_timeout
                self._lock.notify()

    def closing(self, entry: Entry, seconds: float) -> None:
        """Answered for the last time: evictable, and cut off `seconds` from now at the latest."""
        with self._lock:
            if not entry.expired:
                end = time.monotonic() + seconds
                entry.state, entry.deadline = WAITING, min(end, entry.deadline or end)
                self._lock.notify()

    def leave(self, entry: Entry) -> None:
        with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)

    def counts(self) -> dict:
        with self._lock:
            live = [e.state for e in self._entries if not e.expired]
            return {s: live.count(s) for s in (WAITING, ANSWERING, TRUSTED, DRAINING, SETTLED)} | {
                "evicted": self.evicted, "timed_out": self.timed_out}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()

    # -- the reaper -----------------------------------------------------------------------------------------------------
    def _reap(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                pending = []
                for e in self._entries:
                    if e.expired or e.deadline is None:
                        continue
                    if e.deadline <= now:
                        self._cut(e)
                        self.timed_out += 1
                    else:
                        pending.append(e.deadline)
                # every change of deadline notifies; a tick of at most 0.25 s keeps cuts within it
                self._lock.wait(min([0.25] + [d - now for d in pending]) if pending else None)

    @staticmethod
    def _cut(entry: Entry) -> None:
        entry.expired = True
        _shut(entry.sock)


def _victim(waiting: list[Entry]) -> Entry:
    """The oldest waiting connection with nothing unread; the oldest if all have bytes
    waiting (or where poll() is missing: Windows)."""
    oldest_first = sorted(waiting, key=lambda e: e.since)
    if not hasattr(select, "poll"):
        return oldest_first[0]
    poller, fds = select.poll(), []
    for e in oldest_first:
        try:
            fd = e.sock.fileno()
        except (OSError, ValueError):
            fd = -1
        fds.append(fd)
        if fd >= 0:
            poller.register(fd, select.POLLIN)
    unread = {fd for fd, _ in poller.poll(0)}
    for e, fd in zip(oldest_first, fds):
        if fd >= 0 and fd not in unread:
            return e
    return oldest_first[0]


def _shut(sock: socket.socket) -> None:
    """Shut the connection down from another thread: the read in progress in its own
    thread returns at once. socket.socket.shutdown on purpose: on a TLS socket it shuts
    the descriptor without touching the TLS state that the other thread is using."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass
