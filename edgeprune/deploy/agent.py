"""The edgeprune latency agent: benchmarks ONNX models on the device it runs on.

Run it on the edge device (a Raspberry Pi, a Jetson, any box with Python, numpy
and onnxruntime; torch is *not* needed):

    export EDGEPRUNE_AGENT_TOKEN=$(python3 -c "import secrets; print(secrets.token_urlsafe(24))")
    python3 -m edgeprune.deploy.agent --port 8787          # or: edgeprune agent --port 8787
    python3 agent.py --port 8787                            # this file alone, copied to the device

A sweep with `measure: {latency: {device: http://HOST:8787}}` (and the same token
in its environment) then uploads every trial's ONNX model and stores the device's
median and p90.

HTTP API (JSON answers; every endpoint but /health needs `Authorization: Bearer TOKEN`):
    GET  /health      {"ok": true, "api": 1}
    GET  /info        the device: CPU, cores, memory, onnxruntime version and providers, limits
    POST /benchmark   body: the ONNX file (application/octet-stream); query: threads, warmup,
                      repeats, batch_size, input_shape (e.g. 1x3x224x224), max_seconds
                      -> median_ms, p90_ms, mean_ms, min_ms, ... and "device"

Safety: binds 127.0.0.1 unless --host says otherwise (the protocol is plain HTTP:
on a network, prefer an SSH tunnel); the token comes from an environment variable
and is compared in constant time; uploads over --max-upload-mb get 413 before they
are read; one benchmark runs at a time (others wait in a short queue, then 503);
each benchmark runs in a child process with a time limit, in an empty folder, so a
model that crashes or hangs onnxruntime cannot take the agent down; nothing
received is ever unpickled: the body goes to onnxruntime as an ONNX protobuf.

This file imports only the standard library at module level, and numpy and
onnxruntime when it benchmarks; it must keep doing so (no torch, no edgeprune).
"""
from __future__ import annotations

import argparse
import hmac
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

API_VERSION = 1
TOKEN_ENV = "EDGEPRUNE_AGENT_TOKEN"
DEFAULT_PORT = 8787
DEFAULT_MAX_UPLOAD_MB = 256.0

# Bounds on what one request may ask for.
LIMITS = {"threads": (1, 256), "warmup": (0, 1000), "repeats": (1, 10000), "batch_size": (1, 4096)}
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
           "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
           "tensor(int64)": "int64", "tensor(bool)": "bool"}


# -- benchmarking (numpy + onnxruntime) ------------------------------------------

def percentile_stats(times_ms: list[float]) -> dict:
    """median, p90 (nearest rank, as edgeprune.measure does), mean, min, max."""
    t = sorted(times_ms)
    n = len(t)
    median = t[n // 2] if n % 2 else 0.5 * (t[n // 2 - 1] + t[n // 2])
    p90 = t[min(n - 1, int(round(0.9 * (n - 1))))]
    return {"median_ms": median, "p90_ms": p90, "mean_ms": sum(t) / n, "min_ms": t[0], "max_ms": t[-1]}


def _input_feeds(session, batch_size: int, input_shape: Optional[list[int]], seed: int = 0) -> dict:
    import numpy as np
    rng = np.random.default_rng(seed)
    feeds = {}
    for i, inp in enumerate(session.get_inputs()):
        if input_shape is not None and i == 0:
            shape = list(input_shape)
        else:
            shape = []
            for d, dim in enumerate(inp.shape):
                if isinstance(dim, int) and dim > 0:
                    shape.append(dim)
                elif d == 0:
                    shape.append(batch_size)
                else:
                    raise ValueError(f"input {inp.name!r} has a dynamic dimension {dim!r} at axis {d}; "
                                     "pass input_shape (e.g. 1x3x224x224)")
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise ValueError(f"input {inp.name!r} has type {inp.type}, which the agent cannot feed")
        if dtype.startswith("float"):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[inp.name] = np.zeros(shape, dtype=dtype)
    return feeds


def make_session(model, threads: int = 1, providers: Optional[list[str]] = None):
    """An onnxruntime session as edgeprune measures with: `threads` intra-op threads,
    sequential execution, every graph optimisation. `model` is a path or bytes."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=providers or ["CPUExecutionProvider"])


def benchmark_onnx(model, *, threads: int = 1, warmup: int = 3, repeats: int = 20, batch_size: int = 1,
                   input_shape: Optional[list[int]] = None, max_seconds: Optional[float] = None,
                   providers: Optional[list[str]] = None) -> dict:
    """Time `repeats` runs of an ONNX model (path or bytes) after `warmup` untimed ones.

    Inputs are random (float) or zeros (integer) at the model's static shape, with a
    dynamic batch axis set to `batch_size`. With `max_seconds`, timing stops early
    once that much time has been spent (at least one timed run; `truncated` says so).
    Raises ModelLoadError when onnxruntime cannot load the model."""
    t0 = time.perf_counter()
    try:
        session = make_session(model, threads, providers)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelLoadError(_one_line(e)) from None
    load_ms = (time.perf_counter() - t0) * 1000
    feeds = _input_feeds(session, batch_size, input_shape)
    for _ in range(warmup):
        session.run(None, feeds)
    times, truncated = [], False
    started = time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - t) * 1000)
        if max_seconds is not None and time.perf_counter() - started > max_seconds and len(times) < repeats:
            truncated = True
            break
    stats = percentile_stats(times)
    stats.update(repeats=len(times), requested_repeats=repeats, warmup=warmup, threads=threads,
                 batch_size=batch_size, truncated=truncated, load_ms=load_ms,
                 input_shapes={k: list(v.shape) for k, v in feeds.items()},
                 providers=session.get_providers())
    return stats


class ModelLoadError(Exception):
    """onnxruntime could not load the model."""


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:500] + "...") if len(text) > 500 else text


# -- the device --------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").replace("\x00", "").strip()
    except OSError:
        return ""


def device_info() -> dict:
    """What the device is: CPU model, cores, memory, board, onnxruntime and providers."""
    cpu = ""
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            cpu = value.strip()
            if key.strip() == "model name":
                break
    memory_mb = None
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            memory_mb = int(line.split()[1]) // 1024
    info = {
        "hostname": platform.node(), "system": platform.system(), "release": platform.release(),
        "machine": platform.machine(), "cpu": cpu or platform.processor() or platform.machine(),
        "board": _read("/proc/device-tree/model") or None,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_mb": memory_mb, "python": platform.python_version(), "agent_api": API_VERSION,
    }
    try:
        import numpy
        import onnxruntime as ort
        info.update(numpy=numpy.__version__, onnxruntime=ort.__version__,
                    providers=ort.get_available_providers())
    except ImportError as e:  # reported, so the client sees why benchmarks fail
        info.update(onnxruntime=None, providers=[], import_error=str(e))
    return info


# -- the child process that runs one benchmark ---------------------------------------

def _worker(argv: list[str]) -> int:
    """`agent.py --worker MODEL PARAMS_JSON`: benchmark, print one JSON line."""
    model_path, params = argv[0], json.loads(argv[1])
    try:
        result = benchmark_onnx(model_path, **params)
    except ModelLoadError as e:
        print(json.dumps({"error": f"the model failed to load in onnxruntime: {e}", "stage": "load"}))
        return 3
    except Exception as e:
        print(json.dumps({"error": f"the model failed to run: {type(e).__name__}: {_one_line(e)}",
                          "stage": "run"}))
        return 4
    print(json.dumps(result))
    return 0


# -- the HTTP server ---------------------------------------------------------------

class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 16

    def __init__(self, address, token: str, *, max_upload_bytes: int, queue_timeout: float, max_queue: int,
                 bench_timeout: float, read_timeout: float, quiet: bool = False):
        super().__init__(address, AgentHandler)
        self.token = token.encode()
        self.max_upload_bytes, self.queue_timeout, self.max_queue = max_upload_bytes, queue_timeout, max_queue
        self.bench_timeout, self.read_timeout, self.quiet = bench_timeout, read_timeout, quiet
        self.bench_lock = threading.Lock()          # one benchmark at a time
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self.served = 0
        self._info: Optional[dict] = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def info(self) -> dict:
        if self._info is None:
            self._info = device_info()
        return dict(self._info, max_upload_bytes=self.max_upload_bytes, bench_timeout_s=self.bench_timeout,
                    queue_timeout_s=self.queue_timeout, max_queue=self.max_queue)

    def reserve(self) -> None:
        """A place in the bounded queue, taken before the upload is read (so at most
        max_queue + 1 uploads are held in memory); `run_benchmark` gives it back."""
        with self._waiting_lock:
            if self._waiting >= self.max_queue + 1:
                raise HTTPError(503, "busy: the benchmark queue is full; retry later", {"Retry-After": "5"})
            self._waiting += 1

    def release(self) -> None:
        with self._waiting_lock:
            self._waiting -= 1

    def run_benchmark(self, body: bytes, params: dict) -> dict:
        """With a place reserved: wait for the one benchmark slot, then run."""
        try:
            if not self.bench_lock.acquire(timeout=self.queue_timeout):
                raise HTTPError(503, f"busy: another benchmark has run for over {self.queue_timeout:g} s; "
                                     "retry later", {"Retry-After": "5"})
            try:
                return self._run_child(body, params)
            finally:
                self.bench_lock.release()
        finally:
            self.release()

    def _run_child(self, body: bytes, params: dict) -> dict:
        folder = tempfile.mkdtemp(prefix="edgeprune-agent-")
        try:
            path = os.path.join(folder, "model.onnx")
            with open(path, "wb") as f:
                f.write(body)
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", path, json.dumps(params)]
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
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = f"edgeprune-agent/{API_VERSION}"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)   # a stalled client cannot hold a thread

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
            if not self._authorized():
                raise HTTPError(401, f"missing or wrong token (send 'Authorization: Bearer <token>', the "
                                     f"value of {TOKEN_ENV} on the agent)", {"WWW-Authenticate": "Bearer"})
            if path == "/info":
                return self._send(200, self.server.info())
            raise HTTPError(404, f"no such endpoint {path!r}; use /health, /info or POST /benchmark")
        except HTTPError as e:
            self._error(e)

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path != "/benchmark":
                raise HTTPError(404, f"no such endpoint {url.path!r}; POST the model to /benchmark")
            if not self._authorized():
                raise HTTPError(401, f"missing or wrong token (send 'Authorization: Bearer <token>', the "
                                     f"value of {TOKEN_ENV} on the agent)", {"WWW-Authenticate": "Bearer"})
            params = self._params(url.query)
            self.server.reserve()
            try:
                body = self._body()
            except BaseException:
                self.server.release()
                raise
            result = self.server.run_benchmark(body, params)
            result["device"] = self.server.info()
            self.server.served += 1
            self._send(200, result)
        except HTTPError as e:
            if e.status in (401, 404, 411, 413) or (e.status in (400, 503) and not getattr(self, "_body_read", False)):
                self._discard_body()
            self._error(e)
        except (ConnectionError, TimeoutError) as e:   # the client went away or stalled mid-upload
            self.close_connection = True
            self.log_message("dropped connection: %s", e)
        except Exception as e:  # a bug of ours: answer 500 and keep serving
            self.close_connection = True
            self._send(500, {"error": f"internal error: {type(e).__name__}: {_one_line(e)}", "status": 500})

    def _params(self, query: str) -> dict:
        raw = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        unknown = set(raw) - {"threads", "warmup", "repeats", "batch_size", "input_shape", "max_seconds"}
        if unknown:
            raise HTTPError(400, f"unknown parameter(s) {sorted(unknown)}; allowed: threads, warmup, repeats, "
                                 "batch_size, input_shape, max_seconds")
        params: dict = {}
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
            params["input_shape"] = shape
        if "max_seconds" in raw:
            try:
                params["max_seconds"] = float(raw["max_seconds"])
            except ValueError:
                raise HTTPError(400, f"max_seconds must be a number, got {raw['max_seconds']!r}") from None
        return params

    def _body(self) -> bytes:
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
        data = bytearray()
        while len(data) < n:
            chunk = self.rfile.read(min(n - len(data), 1 << 20))
            if not chunk:
                raise ConnectionError("the client closed the connection mid-upload")
            data += chunk
        self._body_read = True
        return bytes(data)


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: Optional[str] = None, *,
                max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, queue_timeout: float = 120.0, max_queue: int = 4,
                bench_timeout: float = 600.0, read_timeout: float = 60.0, quiet: bool = False) -> AgentServer:
    """A bound, not yet serving agent (port 0: an ephemeral port; see `.url`).
    `token` defaults to the EDGEPRUNE_AGENT_TOKEN environment variable."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise SystemExit(f"edgeprune agent: set {TOKEN_ENV} to a secret token first, e.g.\n"
                         f"  export {TOKEN_ENV}=$(python3 -c \"import secrets; print(secrets.token_urlsafe(24))\")\n"
                         "and give the sweep the same value")
    return AgentServer((host, port), token.strip(), max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                       queue_timeout=queue_timeout, max_queue=max_queue, bench_timeout=bench_timeout,
                       read_timeout=read_timeout, quiet=quiet)


def build_parser(prog: str = "edgeprune agent") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Benchmark ONNX models on this device for edgeprune "
                                f"sweeps. The token is read from ${TOKEN_ENV}.")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the agent on the network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest accepted model (default {DEFAULT_MAX_UPLOAD_MB:g} MiB)")
    p.add_argument("--bench-timeout", type=float, default=600.0,
                   help="seconds one benchmark may run, model load included (default 600)")
    p.add_argument("--queue-timeout", type=float, default=120.0,
                   help="seconds a request waits for the running benchmark before 503 (default 120)")
    p.add_argument("--max-queue", type=int, default=4, help="requests that may wait at once (default 4)")
    p.add_argument("--read-timeout", type=float, default=60.0,
                   help="seconds of silence from a client before its connection is dropped (default 60)")
    p.add_argument("--quiet", action="store_true", help="no request log")


def run(args: argparse.Namespace) -> int:
    server = make_server(args.host, args.port, max_upload_mb=args.max_upload_mb, queue_timeout=args.queue_timeout,
                         max_queue=args.max_queue, bench_timeout=args.bench_timeout,
                         read_timeout=args.read_timeout, quiet=args.quiet)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"edgeprune agent: warning: listening on {args.host}: plain HTTP, the token travels in the clear; "
              "on an untrusted network use an SSH tunnel and the default 127.0.0.1", file=sys.stderr)
    print(f"edgeprune agent listening on {server.url} (api {API_VERSION}, max upload "
          f"{args.max_upload_mb:g} MiB)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker(argv[1:])
    return run(build_parser("python -m edgeprune.deploy.agent").parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
