"""The edgeprune latency agent: benchmarks ONNX models on the device it runs on.

Run it on the edge device (a Raspberry Pi, a Jetson, any box with Python, numpy
and onnxruntime; torch is *not* needed):

    export EDGEPRUNE_AGENT_TOKEN=$(python3 -c "import secrets; print(secrets.token_urlsafe(24))")
    python3 -m edgeprune.agent --port 8787                  # or: edgeprune agent --port 8787
    edgeprune agent --bundle edgeprune-agent.pyz            # one file to copy to the device, then there:
    python3 edgeprune-agent.pyz --port 8787

A sweep with `measure: {latency: {device: http://HOST:8787}}` (and the same token
in its environment) then uploads every trial's ONNX model and stores the device's
median and p90.

HTTP API (JSON answers; every endpoint but /health needs `Authorization: Bearer TOKEN`):
    GET  /health      {"ok": true, "api": 1}
    GET  /info        the device: CPU, cores, memory, onnxruntime version and providers, limits
    POST /benchmark   body: the ONNX file (application/octet-stream); query: threads, warmup,
                      repeats, batch_size, input_shape (e.g. 1x3x224x224), max_seconds
                      -> median_ms, p90_ms, mean_ms, min_ms, ... and "device"

Safety: binds 127.0.0.1 unless --host says otherwise (plain HTTP unless it is given
--tls-cert/--tls-key, see tls.py; without TLS, on a network, prefer an SSH tunnel);
the token comes from an environment variable
and is compared in constant time, before any body is read; uploads over
--max-upload-mb get 413 before they are read; headers and uploads have deadlines,
and connections without the token cannot take a token holder's place (gate.py);
one benchmark runs at a time (others
wait in a short queue, then 503);
each benchmark runs in a child process with a time limit, in an empty folder, so a
model that crashes or hangs onnxruntime cannot take the agent down; nothing
received is ever unpickled: the body goes to onnxruntime as an ONNX protobuf.

This package imports only the standard library at module level (and edgeprune's
own torch-free `errors` and `_lazy`), numpy and onnxruntime when it benchmarks; it
must keep doing so: no torch. Modules: bench (sessions, timing, the device),
server (admission, one benchmark at a time in a child process), handler (the token,
the endpoints, bounded heads and bodies), gate (connection classes and deadlines), tls (TLS context,
certificate fingerprints), main (command line, child process, the bundle).
"""

from .._lazy import lazy_getattr

_LAZY = {"benchmark_onnx": "bench", "make_session": "bench", "percentile_stats": "bench", "device_info": "bench",
         "input_feeds": "bench", "ModelLoadError": "bench", "API_VERSION": "bench",
         "make_server": "server", "AgentServer": "server", "TOKEN_ENV": "server", "DEFAULT_PORT": "server",
         "FINGERPRINT_ENV": "tls", "CA_FILE_ENV": "tls",
         "main": "main", "bundle": "main", "add_arguments": "main", "run": "main"}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
