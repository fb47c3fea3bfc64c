"""The agent's HTTP server: token check, limits, one benchmark at a time, each in a
child process. Standard library only.

Against slow or hostile clients:
  * a request has a total deadline (request line, headers and body together): a
    client that drip-feeds bytes is cut off when it passes, whatever each read takes;
  * at most `max_connections` connections are served at once; more get 503 at once;
  * the token is checked before the body is read; an upload over the limit gets 413
    unread; the body goes to a temporary file, not to memory;
  * a place in the benchmark queue is taken only once the whole upload has arrived,
    so slow uploads (even authenticated ones) cannot keep a benchmark from its turn;
  * input dimensions are bounded one by one and as a product (bench.MAX_INPUT_ELEMENTS).
"""
from __future__ import annotations

import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from .bench import API_VERSION, MAX_INPUT_ELEMENTS, device_info, one_line

TOKEN_ENV = "EDGEPRUNE_AGENT_TOKEN"
DEFAULT_PORT = 8787
DEFAULT_MAX_UPLOAD_MB = 256.0
# Bounds on what one request may ask for.
LIMITS = {"threads": (1, 256), "warmup": (0, 1000), "repeats": (1, 10000), "batch_size": (1, 4096),
          "max_repeats": (1, 100000)}
_SUFFIX = {"onnxruntime": ".onnx", "openvino": ".onnx", "litert": ".tflite"}
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 16

    def __init__(self, address, token: str, *, max_upload_bytes: int, queue_timeout: float, max_queue: int,
                 bench_timeout: float, read_timeout: float, request_timeout: float = 300.0,
                 max_connections: int = 8, quiet: bool = False):
        super().__init__(address, AgentHandler)
        self.token = token.encode()
        self.max_upload_bytes, self.queue_timeout, self.max_queue = max_upload_bytes, queue_timeout, max_queue
        self.bench_timeout, self.read_timeout, self.quiet = bench_timeout, read_timeout, quiet
        self.request_timeout, self.max_connections = request_timeout, max_connections
        self.bench_lock = threading.Lock()          # one benchmark at a time
        self._connections = threading.BoundedSemaphore(max_connections)
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self.served = 0
        self._info: Optional[dict] = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    # -- connections ---------------------------------------------------------------
    def process_request(self, request, client_address):
        """Serve at most `max_connections` at once; answer the rest 503 and close."""
        if not self._connections.acquire(blocking=False):
            try:
                body = json.dumps({"error": "busy: too many connections; retry later", "status": 503}).encode()
                request.settimeout(2)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 5\r\nConnection: close\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def info(self) -> dict:
        if self._info is None:
            self._info = device_info()
        return dict(self._info, max_upload_bytes=self.max_upload_bytes, bench_timeout_s=self.bench_timeout,
                    queue_timeout_s=self.queue_timeout, max_queue=self.max_queue,
                    request_timeout_s=self.request_timeout, max_connections=self.max_connections,
                    max_input_elements=MAX_INPUT_ELEMENTS)

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


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = f"edgeprune-agent/{API_VERSION}"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)   # a stalled client cannot hold a thread
        self._deadline = None

    def _arm(self) -> None:
        """Each request must arrive whole by its deadline: past it the socket is shut,
        which ends any read in progress, however slowly the bytes trickle in."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._expired = False
        self._deadline = threading.Timer(self.server.request_timeout, self._expire)
        self._deadline.daemon = True
        self._deadline.start()

    def _expire(self) -> None:
        self._expired = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def finish(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        try:
            super().finish()
        except OSError:
            pass

    def handle_one_request(self) -> None:
        self._arm()
        try:
            super().handle_one_request()
        except OSError:     # cut off at the deadline, or the client vanished
            self.close_connection = True

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
        """Read (and drop) a small unread body so the client sees our answer; a large
        one is not read: the connection is closed instead."""
        self.close_connection = True
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < n <= 8 * 1024 * 1024:
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
            params = self._params(url.query)
            upload = self._body(_SUFFIX[params.get("runtime", "onnxruntime")])
            self.server.reserve()                  # only complete uploads queue for a benchmark
            result = self.server.run_benchmark(upload, params)
            result["device"] = self.server.info()
            self.server.served += 1
            self._send(200, result)
        except HTTPError as e:
            if not getattr(self, "_body_read", False):
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

    def _body(self, suffix: str = ".onnx") -> str:
        """The upload, written to a temporary file (memory stays bounded); its path."""
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
        folder = tempfile.mkdtemp(prefix="edgeprune-agent-")
        path = os.path.join(folder, "model" + suffix)
        try:
            left = n
            with open(path, "wb") as f:
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError("the client closed the connection mid-upload" if not self._expired
                                              else f"the upload ran past the {self.server.request_timeout:g} s "
                                                   "request deadline")
                    f.write(chunk)
                    left -= len(chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._body_read = True
        return path


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: Optional[str] = None, *,
                max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, queue_timeout: float = 120.0, max_queue: int = 4,
                bench_timeout: float = 600.0, read_timeout: float = 60.0, request_timeout: float = 300.0,
                max_connections: int = 8, quiet: bool = False) -> AgentServer:
    """A bound, not yet serving agent (port 0: an ephemeral port; see `.url`).
    `token` defaults to the EDGEPRUNE_AGENT_TOKEN environment variable."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise SystemExit(f"edgeprune agent: set {TOKEN_ENV} to a secret token first, e.g.\n"
                         f"  export {TOKEN_ENV}=$(python3 -c \"import secrets; print(secrets.token_urlsafe(24))\")\n"
                         "and give the sweep the same value")
    if not 0 <= int(port) <= 65535:
        raise SystemExit(f"edgeprune agent: --port {port} is out of range (0..65535; 0 picks a free one)")
    try:
        return AgentServer((host, port), token.strip(), max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                           queue_timeout=queue_timeout, max_queue=max_queue, bench_timeout=bench_timeout,
                           read_timeout=read_timeout, request_timeout=request_timeout,
                           max_connections=max_connections, quiet=quiet)
    except OSError as e:
        raise SystemExit(f"edgeprune agent: cannot listen on {host}:{port} ({e.strerror or e}); is another agent "
                         "running there? pick another --port") from None
