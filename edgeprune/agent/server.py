"""The agent's HTTP server: token check, limits, one benchmark at a time, each in a
child process; optional TLS. Standard library only.

Against slow or hostile clients (gate.py has the design and why):
  * a connection's TLS handshake and headers must arrive within `header_timeout` of
    its accept (default 10 s): a client that drip-feeds bytes is cut off then,
    whatever each read takes; the upload has its own deadline, `request_timeout`;
  * only a token holder's upload holds one of the `max_connections` places (more get
    503 with Retry-After); connections that have not shown the token are capped
    apart (`max_unauthenticated`), the oldest cut off when a new one comes: no number
    of anonymous connections can keep a token holder out;
  * the token is checked before the body is read; an upload over the limit gets 413
    unread; the body goes to a temporary file, not to memory; a request head is
    bounded in bytes; a refused request's body is read (up to a bound) before the
    answer, so that a client sending it sees the answer, not a reset connection;
  * a place in the benchmark queue is taken only once the whole upload has arrived,
    so slow uploads (even authenticated ones) cannot keep a benchmark from its turn;
    the wait and the run have their own limits (queue_timeout, bench_timeout), not
    the upload's;
  * input dimensions are bounded one by one and as a product (bench.MAX_INPUT_ELEMENTS).
"""
from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import HTTPServer
from typing import Optional

from ..agent_protocol import TOKEN_ENV
from .bench import MAX_INPUT_ELEMENTS, device_info, one_line
from .gate import Entry, Gate
from .handler import HEAD_LIMIT, LINGER_SECONDS, AgentHandler, HTTPError, _Answered, _linger
from .tls import certificate_fingerprint, server_context

DEFAULT_PORT = 8787
DEFAULT_MAX_UPLOAD_MB = 256.0
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class AgentServer(HTTPServer):
    """Accepts on one thread, which only admits (gate.Gate) and starts a thread per
    connection: no client can stall the accept loop."""
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, token: str, *, max_upload_bytes: int, queue_timeout: float, max_queue: int,
                 bench_timeout: float, read_timeout: float, request_timeout: float = 300.0,
                 header_timeout: float = 10.0, max_connections: int = 8, max_unauthenticated: int = 32,
                 tls: Optional[ssl.SSLContext] = None, tls_fingerprint: Optional[str] = None, quiet: bool = False):
        # a request's headers never get longer than the whole request may take
        self.request_timeout, self.header_timeout = request_timeout, min(header_timeout, request_timeout)
        self.gate = Gate(header_timeout=self.header_timeout, request_timeout=request_timeout,
                         max_waiting=max_unauthenticated, max_trusted=max_connections)
        super().__init__(address, AgentHandler)       # (a failed bind calls server_close, which closes the gate)
        self.token = token.encode()
        self.max_upload_bytes, self.queue_timeout, self.max_queue = max_upload_bytes, queue_timeout, max_queue
        self.bench_timeout, self.read_timeout, self.quiet = bench_timeout, read_timeout, quiet
        self.max_connections, self.max_unauthenticated = max_connections, max_unauthenticated
        self.tls, self.tls_fingerprint = tls, tls_fingerprint
        self.bench_lock = threading.Lock()          # one benchmark at a time
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self.served = 0
        self._info: Optional[dict] = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    # -- connections ---------------------------------------------------------------
    def process_request(self, request, client_address):
        entry = self.gate.admit(request)
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address, entry), daemon=True)
        try:
            thread.start()
        except RuntimeError:         # no more threads: drop this one, keep accepting
            self.gate.leave(entry)
            self.shutdown_request(request)

    def _serve_connection(self, request, client_address, entry: Entry) -> None:
        try:
            AgentHandler(request, client_address, self, entry)
        except (OSError, http.client.HTTPException, _Answered) as e:   # cut off, vanished, TLS refused
            if not self.quiet and not entry.expired and not isinstance(e, _Answered):
                sys.stderr.write(f"[agent] {client_address[0]} dropped connection: {type(e).__name__}: "
                                 f"{one_line(e)}\n")
        except Exception as e:  # noqa: BLE001 - a bug of ours: log one line, keep serving
            sys.stderr.write(f"[agent] {client_address[0]} internal error: {type(e).__name__}: {one_line(e)}\n")
        finally:
            if not entry.expired:
                self.gate.closing(entry, LINGER_SECONDS)
                _linger(entry.sock, HEAD_LIMIT, LINGER_SECONDS)
            self.gate.leave(entry)
            self.close_request(entry.sock)           # the TLS wrapper, when there is one

    def server_close(self) -> None:
        super().server_close()
        self.gate.close()

    def info(self) -> dict:
        if self._info is None:
            self._info = device_info()
        return dict(self._info, max_upload_bytes=self.max_upload_bytes, bench_timeout_s=self.bench_timeout,
                    queue_timeout_s=self.queue_timeout, max_queue=self.max_queue,
                    request_timeout_s=self.request_timeout, header_timeout_s=self.header_timeout,
                    max_connections=self.max_connections, max_unauthenticated=self.max_unauthenticated,
                    max_input_elements=MAX_INPUT_ELEMENTS, tls=self.tls is not None)

    # -- the benchmark queue ---------------------------------------------------------
    def reserve(self) -> None:
        """A place in the bounded queue (taken once the upload is complete)."""
        with self._waiting_lock:
            if self._waiting >= self.max_queue + 1:
                raise HTTPError(503, "busy: the benchmark queue is full; retry later", {"Retry-After": "5"})
            self._waiting += 1

    def release(self) -> None:
        with self._waiting_lock:
            self._waiting -= 1

    def run_benchmark(self, model_path: str, params: dict) -> dict:
        """With a place reserved: wait for the one benchmark slot, then run."""
        try:
            if not self.bench_lock.acquire(timeout=self.queue_timeout):
                raise HTTPError(503, f"busy: another benchmark has run for over {self.queue_timeout:g} s; "
                                     "retry later", {"Retry-After": "5"})
            try:
                return self._run_child(model_path, params)
            finally:
                self.bench_lock.release()
        finally:
            self.release()

    def _run_child(self, model_path: str, params: dict) -> dict:
        folder = os.path.dirname(model_path)
        code = (f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); from edgeprune.agent.main import main; "
                "sys.exit(main(sys.argv[1:]))")
        cmd = [sys.executable, "-c", code, "--worker", model_path, json.dumps(params)]
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}   # the child needs no secret
        t0, started = time.perf_counter(), time.time()
        try:
            proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, timeout=self.bench_timeout)
        except subprocess.TimeoutExpired:
            raise HTTPError(504, f"the benchmark ran past the agent's limit of {self.bench_timeout:g} s "
                                 "(fewer repeats, or start the agent with a larger --bench-timeout)")
        wall = time.perf_counter() - t0
        lines = proc.stdout.decode(errors="replace").strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else None
        except ValueError:
            result = None
        if not isinstance(result, dict):
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            raise HTTPError(500, f"the benchmark process crashed ({how}): {err[-1] if err else 'no output'}")
        if "error" in result:
            raise HTTPError(400 if result.get("stage") == "load" else 422, result["error"])
        result.update(agent_seconds=wall, agent_started=started, agent_finished=time.time())
        return result


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: Optional[str] = None, *,
                max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, queue_timeout: float = 120.0, max_queue: int = 4,
                bench_timeout: float = 600.0, read_timeout: float = 60.0, request_timeout: float = 300.0,
                header_timeout: float = 10.0, max_connections: int = 8, max_unauthenticated: int = 32,
                tls_cert: Optional[str] = None, tls_key: Optional[str] = None, quiet: bool = False) -> AgentServer:
    """A bound, not yet serving agent (port 0: an ephemeral port; see `.url`).
    `token` defaults to the EDGEPRUNE_AGENT_TOKEN environment variable. With
    `tls_cert` and `tls_key` (PEM files) it serves HTTPS; `.tls_fingerprint` is
    the certificate's sha256 fingerprint, for clients to pin."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise SystemExit(f"edgeprune agent: set {TOKEN_ENV} to a secret token first, e.g.\n"
                         f"  export {TOKEN_ENV}=$(python3 -c \"import secrets; print(secrets.token_urlsafe(24))\")\n"
                         "and give the sweep the same value")
    if not 0 <= int(port) <= 65535:
        raise SystemExit(f"edgeprune agent: --port {port} is out of range (0..65535; 0 picks a free one)")
    tls = fingerprint = None
    if bool(tls_cert) != bool(tls_key):
        raise SystemExit("edgeprune agent: TLS needs both --tls-cert and --tls-key (PEM files: the certificate and "
                         "its private key)")
    if tls_cert:
        try:
            tls = server_context(tls_cert, tls_key)
            fingerprint = certificate_fingerprint(tls_cert)
        except ValueError as e:
            raise SystemExit(f"edgeprune agent: {e}") from None
    try:
        return AgentServer((host, port), token.strip(), max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                           queue_timeout=queue_timeout, max_queue=max_queue, bench_timeout=bench_timeout,
                           read_timeout=read_timeout, request_timeout=request_timeout, header_timeout=header_timeout,
                           max_connections=max_connections, max_unauthenticated=max_unauthenticated, tls=tls,
                           tls_fingerprint=fingerprint, quiet=quiet)
    except OSError as e:
        raise SystemExit(f"edgeprune agent: cannot listen on {host}:{port} ({e.strerror or e}); is another agent "
                         "running there? pick another --port") from None
