"""Client of `edgeprune agent`: upload an ONNX model, get the device's latency.

Standard library only (like the agent), so it also works where torch is absent.
Over https:// (an agent started with --tls-cert/--tls-key) the certificate is
checked before the token is sent: against a pinned fingerprint (the agent prints
it when it starts), or a CA file, or the system's CAs when neither is given.
"""
from __future__ import annotations

import functools
import hmac
import http.client
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional, Union

from ..agent_protocol import CA_FILE_ENV, FINGERPRINT_ENV, TOKEN_ENV, fingerprint as der_fingerprint, normalize_fingerprint

CERT_ERROR = 495        # AgentError.status when the agent's certificate is not the one expected (nginx's code)


class AgentError(RuntimeError):
    """The agent refused or failed a request; `.status` is the HTTP status (0: no answer;
    495: its TLS certificate could not be verified, a setting to fix)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Checks the peer certificate's fingerprint right after the handshake, before a
    byte of the request (the token) is sent."""

    def __init__(self, *args, pinned: Optional[str] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pinned = pinned

    def connect(self) -> None:
        super().connect()
        if self.pinned:
            seen = der_fingerprint(self.sock.getpeercert(binary_form=True) or b"")
            if not hmac.compare_digest(seen, self.pinned):
                self.sock.close()
                raise _FingerprintMismatch(seen)


class _FingerprintMismatch(ConnectionError):
    pass


class _AgentHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext, pinned: Optional[str]):
        super().__init__(context=context)
        self._connection = functools.partial(_PinnedHTTPSConnection, pinned=pinned)
        self._ctx = context

    def https_open(self, req):
        return self.do_open(self._connection, req, context=self._ctx)


class AgentClient:
    """`AgentClient("http://pi.local:8787").benchmark("model.onnx", threads=4)`.

    The token defaults to the `token_env` environment variable. A busy agent (503)
    is retried with back-off for up to `busy_wait` seconds.

    For an https:// URL (an agent started with --tls-cert/--tls-key): `fingerprint`
    pins its certificate (`sha256:...`, as the agent prints it when it starts; default:
    $EDGEPRUNE_AGENT_FINGERPRINT), which is what a self-signed certificate needs;
    `ca_file` (default: $EDGEPRUNE_AGENT_CA_FILE) verifies it against a CA and the
    host name. With neither, the system's CAs are used. With both, both must hold."""

    def __init__(self, url: str, token: Optional[str] = None, token_env: str = TOKEN_ENV,
                 timeout: float = 600.0, busy_wait: float = 600.0, *, fingerprint: Optional[str] = None,
                 ca_file: Optional[Union[str, Path]] = None):
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"agent URL {url!r}: expected http://HOST:PORT or https://HOST:PORT (where "
                             "`edgeprune agent` listens)")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.token = token if token is not None else os.environ.get(token_env, "")
        self.token_env = token_env
        self.timeout, self.busy_wait = timeout, busy_wait
        self._info: Optional[dict] = None
        pin_source = "fingerprint=" if fingerprint else FINGERPRINT_ENV
        fingerprint = fingerprint or os.environ.get(FINGERPRINT_ENV) or None
        ca_file = ca_file or os.environ.get(CA_FILE_ENV) or None
        self.fingerprint = normalize_fingerprint(fingerprint) if fingerprint else None
        self.ca_file = str(ca_file) if ca_file else None
        if parts.scheme == "http":
            if self.fingerprint or self.ca_file:     # the user meant TLS: never send the token in the clear instead
                what = f"a certificate fingerprint ({pin_source})" if self.fingerprint else "a CA file"
                raise ValueError(f"agent URL {self.url}: {what} is set, but the URL is plain http; use "
                                 f"https://{parts.netloc} (the agent started with --tls-cert/--tls-key)")
            self._opener = urllib.request.build_opener()
        else:
            self._opener = urllib.request.build_opener(_AgentHTTPSHandler(self._tls_context(), self.fingerprint))

    def _tls_context(self) -> ssl.SSLContext:
        if self.ca_file:
            if not Path(self.ca_file).is_file():
                raise ValueError(f"CA file {self.ca_file} not found (ca_file or {CA_FILE_ENV}); give the PEM "
                                 "certificate of the CA that signed the agent's, or its own if self-signed")
            try:
                ctx = ssl.create_default_context(cafile=self.ca_file)
            except ssl.SSLError as e:
                raise ValueError(f"CA file {self.ca_file}: not a PEM certificate ({e.reason or e})") from None
        elif self.fingerprint:           # the pin is the trust: no CA, no host name to check
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

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
                with self._opener.open(req, timeout=self.timeout) as resp:
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
                raise self._no_answer(getattr(e, "reason", e)) from None

    def _no_answer(self, reason) -> AgentError:
        if isinstance(reason, _FingerprintMismatch):
            return AgentError(CERT_ERROR, f"agent at {self.url}: its certificate is {reason} but {self.fingerprint} is "
                                          "pinned; if the agent's certificate was renewed, pin the fingerprint it "
                                          "prints now, else this is not your agent")
        if isinstance(reason, ssl.SSLCertVerificationError):
            why = (getattr(reason, "verify_message", "") or str(reason)).rstrip(".")
            how = (f"check that {self.ca_file} signed it and that the URL's host is in it"
                   if self.ca_file else
                   f"a self-signed certificate needs its fingerprint pinned: {FINGERPRINT_ENV}=sha256:... (or "
                   "AgentClient(fingerprint=...)), as the agent prints it when it starts, or a CA file: "
                   f"{CA_FILE_ENV}=ca.pem (or ca_file=...)")
            return AgentError(CERT_ERROR, f"agent at {self.url}: its TLS certificate is not trusted ({why}); {how}")
        if isinstance(reason, ssl.SSLError) and self.url.startswith("https:"):
            return AgentError(0, f"agent at {self.url}: TLS failed ({getattr(reason, 'reason', None) or reason}); "
                                 "was it started with --tls-cert/--tls-key? If not, use http://")
        return AgentError(0, f"agent at {self.url} did not answer ({reason}); is `edgeprune agent` running there, "
                             "and reachable (an SSH tunnel?)")

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
