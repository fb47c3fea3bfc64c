"""Client of `edgeprune agent`: upload an ONNX model, get the device's latency.

Standard library only (like the agent), so it also works where torch is absent.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional, Union

from ..agent.server import TOKEN_ENV


class AgentError(RuntimeError):
    """The agent refused or failed a request; `.status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class AgentClient:
    """`AgentClient("http://pi.local:8787").benchmark("model.onnx", threads=4)`.

    The token defaults to the `token_env` environment variable. A busy agent (503)
    is retried with back-off for up to `busy_wait` seconds."""

    def __init__(self, url: str, token: Optional[str] = None, token_env: str = TOKEN_ENV,
                 timeout: float = 600.0, busy_wait: float = 600.0):
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"agent URL {url!r}: expected http://HOST:PORT (where `edgeprune agent` listens)")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.token = token if token is not None else os.environ.get(token_env, "")
        self.token_env = token_env
        self.timeout, self.busy_wait = timeout, busy_wait
        self._info: Optional[dict] = None

    def _request(self, method: str, path: str, body: Optional[bytes] = None, query: Optional[dict] = None,
                 auth: bool = True) -> dict:
        url = self.url + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        headers = {"Accept": "application/json"}
        if auth:
            if not self.token:
                raise AgentError(401, f"no token for the agent at {self.url}: set {self.token_env} to the "
                                      "agent's token")
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        deadline = time.monotonic() + self.busy_wait
        delay = 0.5
        while True:
            req = urllib.request.Request(url, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as e:
                try:
                    message = json.loads(e.read().decode()).get("error", "")
                except (ValueError, OSError):
                    message = ""
                if e.code == 503 and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                raise AgentError(e.code, f"agent at {self.url}: HTTP {e.code}: {message or e.reason}") from None
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                raise AgentError(0, f"agent at {self.url} did not answer ({reason}); is `edgeprune agent` "
                                    "running there, and reachable (an SSH tunnel?)") from None

    def health(self) -> dict:
        return self._request("GET", "/health", auth=False)

    def info(self) -> dict:
        """The device's description (CPU, cores, memory, onnxruntime, providers) and the agent's limits."""
        if self._info is None:
            self._info = self._request("GET", "/info")
        return self._info

    def benchmark(self, model: Union[str, Path, bytes], *, threads: int = 1, warmup: int = 3, repeats: int = 20,
                  batch_size: int = 1, input_shape: Optional[list[int]] = None,
                  max_seconds: Optional[float] = None, runtime: str = "onnxruntime",
                  max_repeats: Optional[int] = None, rel_ci: Optional[float] = None) -> dict:
        """Benchmark an ONNX model (a path or its bytes) on the device: median_ms, p90_ms,
        mean_ms, min_ms, max_ms, repeats, ..., the device under "device", and
        `round_trip_s`, the wall time of the whole request seen from here."""
        data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        limit = self.info().get("max_upload_bytes")
        if limit is not None and len(data) > limit:
            raise AgentError(413, f"the model ({len(data)} bytes) is over the agent's upload limit of {limit} "
                                  "bytes; start the agent with a larger --max-upload-mb")
        query = {"threads": threads, "warmup": warmup, "repeats": repeats, "batch_size": batch_size}
        if input_shape is not None:
            query["input_shape"] = "x".join(str(int(d)) for d in input_shape)
        if max_seconds is not None:
            query["max_seconds"] = max_seconds
        if runtime != "onnxruntime":
            query["runtime"] = runtime
        if rel_ci:
            query.update(rel_ci=rel_ci, max_repeats=max_repeats or repeats)
        t0 = time.perf_counter()
        result = self._request("POST", "/benchmark", body=bytes(data), query=query)
        result["round_trip_s"] = time.perf_counter() - t0
        return result
