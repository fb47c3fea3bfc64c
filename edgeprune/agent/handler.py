"""The agent's request handler: the token check, the three endpoints, bounded request
heads and bodies, and answers that always arrive (a refused request's body is read
first). Standard library only; the server (server.py) admits connections and runs
the benchmarks."""
from __future__ import annotations

import hmac
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Optional

from ..agent_protocol import TOKEN_ENV
from .bench import API_VERSION, MAX_INPUT_ELEMENTS, one_line
from .gate import Entry

if TYPE_CHECKING:     # the server hands itself to each handler; the handler never imports it
    from .server import AgentServer

HEAD_LIMIT = 64 * 1024                  # bytes of request line and headers (http.server alone allows 6.4 MB)
ANONYMOUS_DRAIN_LIMIT = 1024 * 1024     # body bytes read from a refused client without the token
DRAIN_LIMIT = 8 * 1024 * 1024           # and from a token holder, beyond the upload limit itself
LINGER_SECONDS = 1.0                    # at most, reading what a client still sends after its last answer
# Bounds on what one request may ask for.
LIMITS = {"threads": (1, 256), "warmup": (0, 1000), "repeats": (1, 10000), "batch_size": (1, 4096),
          "max_repeats": (1, 100000)}
_SUFFIX = {"onnxruntime": ".onnx", "openvino": ".onnx", "litert": ".tflite"}



UPLOAD_PREFIX = "edgeprune-agent-"    # + the agent's pid: its uploads' temporary folders


def remove_stale_uploads(root: str | None = None) -> list[str]:
    """Upload folders of agents that are gone (killed mid-request: a SIGKILL runs no
    clean-up); returns the folders removed. An agent removes them when it starts."""
    root = root or tempfile.gettempdir()
    removed = []
    for name in os.listdir(root):
        pid = name[len(UPLOAD_PREFIX):].split("-", 1)[0]
        if not name.startswith(UPLOAD_PREFIX) or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True          # another user's process: alive, not ours to judge
    return True

class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


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
    server: "AgentServer"
    server_version = f"edgeprune-agent/{API_VERSION}"
    protocol_version = "HTTP/1.1"

    def __init__(self, request, client_address, server: "AgentServer", entry: Entry):
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
        folder = tempfile.mkdtemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-")     # the pid: a later start clears it
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
