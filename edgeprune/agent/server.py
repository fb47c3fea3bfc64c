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

import hmac
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Optional

from ..agent_protocol import TOKEN_ENV
from .bench import API_VERSION, MAX_INPUT_ELEMENTS, device_info, one_line
from .gate import Entry, Gate
from .tls import certificate_fingerprint, server_context

DEFAULT_PORT = 8787
DEFAULT_MAX_UPLOAD_MB = 256.0
HEAD_LIMIT = 64 * 1024                  # bytes of request line and headers (http.server alone allows 6.4 MB)
ANONYMOUS_DRAIN_LIMIT = 1024 * 1024     # body bytes read from a refused client without the token
DRAIN_LIMIT = 8 * 1024 * 1024           # and from a token holder, beyond the upload limit itself
LINGER_SECONDS = 1.0                    # at most, reading what a client still sends after its last answer
# Bounds on what one request may ask for.
LIMITS = {"threads": (1, 256), "warmup": (0, 1000), "repeats": (1, 10000), "batch_size": (1, 4096),
          "max_repeats": (1, 100000)}
_SUFFIX = {"onnxruntime": ".onnx", "openvino": ".onnx", "litert": ".tflite"}
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


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


class _Answered(Exception):
    """The connection was answered before any HTTP was parsed (plain HTTP sent to a TLS agent)."""


class _HeadBudget:
    """The request line and headers may not exceed HEAD_LIMIT bytes together; the
    body (read with read()) is not counted."""

    def __init__(self, raw):
        self.raw, self.left = raw, HEAD_LIMIT

    def readline(self, size: int = -1) -> bytes:
        line = self.raw.readline(self.left + 1 if size is None or size < 0 else min(size, self.left + 1))
        self.left -= len(line)
        if self.left < 0:
            raise http.client.LineTooLong(f"request line and headers over {HEAD_LIMIT} bytes")
        return line

    def __getattr__(self, name):
        return getattr(self.raw, name)


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = f"edgeprune-agent/{API_VERSION}"
    protocol_version = "HTTP/1.1"

    def __init__(self, request, client_address, server: AgentServer, entry: Entry):
        self.entry = entry
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        self.request.settimeout(self.server.read_timeout)   # silence: the deadlines (gate.py) cut the rest
        if self.server.tls is not None:
            self.request = self._start_tls(self.request)
        super().setup()
        self.rfile = _HeadBudget(self.rfile)

    def _start_tls(self, sock: socket.socket) -> ssl.SSLSocket:
        """The handshake, within the header deadline. Plain HTTP sent here gets a plain
        answer that says to use https://, rather than a bare TLS failure."""
        first = sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise ConnectionError("closed before the TLS handshake")
        if first != b"\x16":                   # not a TLS handshake record
            body = json.dumps({"error": "this agent speaks TLS: use https:// in its URL", "status": 400}).encode()
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            raise _Answered()                  # (lingers on its way out)
        tls = self.server.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.server.gate.rebind(self.entry, tls)
        tls.do_handshake()
        return tls

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.server.gate.wait_again(self.entry)       # the next request's headers: the short deadline again
            self.handle_one_request()

    def handle_one_request(self) -> None:
        self.rfile.left = HEAD_LIMIT
        self._token_shown = self._body_read = False
        try:
            super().handle_one_request()
        except (OSError, http.client.HTTPException):     # cut off at a deadline, the client vanished, head too long
            self.close_connection = True

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.entry.expired:                 # cut off mid-headers: what arrived is not a request
            self.close_connection = True
            return False
        self.server.gate.answering(self.entry)
        return True

    # -- plumbing ----------------------------------------------------------------
    def _send(self, status: int, payload: dict, headers: Optional[dict] = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, e: HTTPError) -> None:
        self._send(e.status, {"error": e.message, "status": e.status}, e.headers)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer":
            value = self.headers.get("X-Edgeprune-Token", "")
        return hmac.compare_digest(value.strip().encode(), self.server.token)

    def _require_token(self) -> None:
        if not self._authorized():
            raise HTTPError(401, f"missing or wrong token (send 'Authorization: Bearer <token>', the value of "
                                 f"{TOKEN_ENV} on the agent)", {"WWW-Authenticate": "Bearer"})

    def _discard_body(self) -> None:
        """Read (and drop) the unread body of a refused request, so that a client that
        sends it all before reading (urllib, http.client) gets our answer, not a reset
        connection. A token holder's body is read up to the upload limit or DRAIN_LIMIT,
        the larger (its upload deadline runs, and it holds no place meanwhile); another's
        only up to ANONYMOUS_DRAIN_LIMIT, under its header deadline. A larger body is not
        read: the connection is closed instead."""
        self.close_connection = True
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        limit = max(self.server.max_upload_bytes, DRAIN_LIMIT) if self._token_shown else ANONYMOUS_DRAIN_LIMIT
        if not 0 < n <= limit:
            return
        if self._token_shown:
            self.server.gate.drain(self.entry)
        else:
            self.server.gate.anonymous(self.entry)
        try:
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 16))
                if not chunk:
                    break
                n -= len(chunk)
        except OSError:
            pass

    def log_message(self, fmt, *args) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"[agent] {self.address_string()} {fmt % args}\n")

    # -- routes --------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path == "/health":
                return self._send(200, {"ok": True, "api": API_VERSION})
            self._require_token()
            if path == "/info":
                return self._send(200, self.server.info())
            raise HTTPError(404, f"no such endpoint {path!r}; use /health, /info or POST /benchmark")
        except HTTPError as e:
            self._error(e)

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        upload = None
        try:
            if url.path != "/benchmark":
                raise HTTPError(404, f"no such endpoint {url.path!r}; POST the model to /benchmark")
            self._require_token()                  # before a byte of the body is read
            self._token_shown = True
            params = self._params(url.query)
            n = self._content_length()
            if not self.server.gate.trust(self.entry):
                if self.entry.expired:
                    raise ConnectionError("cut off at its header deadline")
                raise HTTPError(503, f"busy: {self.server.max_connections} uploads or benchmarks are in progress; "
                                     "retry later", {"Retry-After": "5"})
            upload = self._body(n, _SUFFIX[params.get("runtime", "onnxruntime")])
            self.server.gate.settle(self.entry)   # whole: the queue and the run have their own limits
            self.server.reserve()                  # only complete uploads queue for a benchmark
            result = self.server.run_benchmark(upload, params)
            result["device"] = self.server.info()
            self.server.served += 1
            self._send(200, result)
        except HTTPError as e:
            if not self._body_read:
                self._discard_body()
            self._error(e)
        except (ConnectionError, TimeoutError, OSError) as e:   # the client went away, stalled or overran
            self.close_connection = True
            self.log_message("dropped connection: %s", e)
        except Exception as e:  # a bug of ours: answer 500 and keep serving
            self.close_connection = True
            self._send(500, {"error": f"internal error: {type(e).__name__}: {one_line(e)}", "status": 500})
        finally:
            if upload is not None:
                shutil.rmtree(os.path.dirname(upload), ignore_errors=True)

    def _params(self, query: str) -> dict:
        raw = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        allowed = {"threads", "warmup", "repeats", "batch_size", "input_shape", "max_seconds", "runtime",
                   "max_repeats", "rel_ci"}
        unknown = set(raw) - allowed
        if unknown:
            raise HTTPError(400, f"unknown parameter(s) {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
        params: dict = {}
        if "runtime" in raw:
            if raw["runtime"] not in _SUFFIX:
                raise HTTPError(400, f"runtime {raw['runtime']!r}: this agent runs {', '.join(_SUFFIX)} (a TVM "
                                     "module is native code: use TVM's RPC server for it)")
            params["runtime"] = raw["runtime"]
        if "rel_ci" in raw:
            try:
                params["rel_ci"] = float(raw["rel_ci"])
            except ValueError:
                raise HTTPError(400, f"rel_ci must be a number, got {raw['rel_ci']!r}") from None
            if not 0 < params["rel_ci"] < 1:
                raise HTTPError(400, "rel_ci must lie in (0, 1)")
        for key, (lo, hi) in LIMITS.items():
            if key in raw:
                try:
                    value = int(raw[key])
                except ValueError:
                    raise HTTPError(400, f"{key} must be an integer, got {raw[key]!r}") from None
                if not lo <= value <= hi:
                    raise HTTPError(400, f"{key} must lie in [{lo}, {hi}], got {value}")
                params[key] = value
        if "input_shape" in raw:
            try:
                shape = [int(d) for d in raw["input_shape"].lower().replace(",", "x").split("x")]
            except ValueError:
                raise HTTPError(400, f"input_shape looks like 1x3x224x224, got {raw['input_shape']!r}") from None
            if not 1 <= len(shape) <= 8 or any(d <= 0 or d > 1 << 16 for d in shape):
                raise HTTPError(400, f"input_shape {raw['input_shape']!r} is out of range")
            elements = 1
            for d in shape:
                elements *= d
            if elements > MAX_INPUT_ELEMENTS:
                raise HTTPError(400, f"input_shape {raw['input_shape']!r} has {elements:,} elements, more than "
                                     f"the agent's limit of {MAX_INPUT_ELEMENTS:,}")
            params["input_shape"] = shape
        if "max_seconds" in raw:
            try:
                params["max_seconds"] = float(raw["max_seconds"])
            except ValueError:
                raise HTTPError(400, f"max_seconds must be a number, got {raw['max_seconds']!r}") from None
        return params

    def _content_length(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HTTPError(411, "send the model with a Content-Length (chunked uploads are not accepted)")
        length = self.headers.get("Content-Length")
        if length is None:
            raise HTTPError(411, "a Content-Length header is required")
        try:
            n = int(length)
        except ValueError:
            raise HTTPError(400, f"bad Content-Length {length!r}") from None
        if n <= 0:
            raise HTTPError(400, "empty body: POST the ONNX file's bytes")
        if n > self.server.max_upload_bytes:
            raise HTTPError(413, f"upload of {n} bytes is over the agent's limit of {self.server.max_upload_bytes} "
                                 "bytes (start it with a larger --max-upload-mb)")
        return n

    def _body(self, n: int, suffix: str = ".onnx") -> str:
        """The upload, written to a temporary file (memory stays bounded); its path."""
        folder = tempfile.mkdtemp(prefix="edgeprune-agent-")
        path = os.path.join(folder, "model" + suffix)
        try:
            left = n
            with open(path, "wb") as f:
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError("the client closed the connection mid-upload" if not self.entry.expired
                                              else f"the upload ran past the {self.server.request_timeout:g} s "
                                                   "request deadline")
                    f.write(chunk)
                    left -= len(chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._body_read = True
        return path


def _linger(sock: socket.socket, limit: int, seconds: float) -> None:
    """Before closing: stop sending, and read what the client still sends (up to `limit`
    bytes, `seconds`; a client that has read its answer hangs up at once). Closing with
    unread bytes would reset the connection, and a reset can reach the client before
    it has read an answer sent before its request was (431, 413, plain HTTP on TLS)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(seconds)
        while limit > 0:
            chunk = sock.recv(min(limit, 1 << 16))
            if not chunk:
                break
            limit -= len(chunk)
    except OSError:
        pass


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
