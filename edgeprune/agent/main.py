"""The agent's command line (`edgeprune agent`, `python -m edgeprune.agent`, or the
single-file bundle `python3 edgeprune-agent.pyz`), its benchmark child process,
and `bundle()`, which writes that single file for a device."""
from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Optional

from .bench import API_VERSION, ModelLoadError, benchmark, one_line
from .server import DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, TOKEN_ENV, make_server

_BUNDLED = ("__init__.py", "_lazy.py", "errors.py", "deploy/__init__.py", "deploy/onnx_session.py",
            "measure/__init__.py", "measure/timing.py", "measure/cpu_features.py", "agent_protocol.py", "agent/__init__.py", "agent/__main__.py", "agent/bench.py",
            "agent/main.py", "agent/server.py", "agent/handler.py", "agent/gate.py", "agent/tls.py")


def _worker(argv: list[str]) -> int:
    """`--worker MODEL PARAMS_JSON`: benchmark, print one JSON line."""
    model_path, params = argv[0], json.loads(argv[1])
    try:
        result = benchmark(model_path, **params)
    except ModelLoadError as e:
        print(json.dumps({"error": f"the model failed to load in {params.get('runtime', 'onnxruntime')}: {e}",
                          "stage": "load"}))
        return 3
    except Exception as e:
        print(json.dumps({"error": f"the model failed to run: {type(e).__name__}: {one_line(e)}", "stage": "run"}))
        return 4
    print(json.dumps(result))
    return 0


def bundle(path: str | os.PathLike) -> Path:
    """Write the agent as one file, a Python zipapp: copy it to the device and run
    `python3 edgeprune-agent.pyz --port 8787` (numpy and onnxruntime needed there, not torch)."""
    root = Path(__file__).resolve().parents[1]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name in _BUNDLED:
            z.write(root / name, f"edgeprune/{name}")
        z.writestr("__main__.py", "import sys\nfrom edgeprune.agent.main import main\nsys.exit(main())\n")
    data = b"#!/usr/bin/env python3\n" + tmp.read_bytes()
    tmp.unlink()
    path.write_bytes(data)
    path.chmod(0o755)
    return path


def build_parser(prog: str = "edgeprune agent") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Benchmark ONNX models on this device for edgeprune "
                                f"sweeps. The token is read from ${TOKEN_ENV}.")
    add_arguments(p)
    return p


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
        return value
    return parse


# The agent's limits: option -> (make_server's keyword, type, default, help). The command
# line and the server are made from this one table.
LIMITS = {
    "--max-upload-mb": ("max_upload_mb", float, DEFAULT_MAX_UPLOAD_MB,
                        f"largest accepted model (default {DEFAULT_MAX_UPLOAD_MB:g} MiB)"),
    "--bench-timeout": ("bench_timeout", float, 600.0,
                        "seconds one benchmark may run, model load included (default 600)"),
    "--queue-timeout": ("queue_timeout", float, 120.0,
                        "seconds a request waits for the running benchmark before 503 (default 120)"),
    "--max-queue": ("max_queue", int, 4, "requests that may wait at once (default 4)"),
    "--read-timeout": ("read_timeout", float, 60.0,
                       "seconds of silence from a client before its connection is dropped (default 60)"),
    "--header-timeout": ("header_timeout", float, 10.0,
                         "seconds from a connection's accept to the end of its headers (TLS handshake included): "
                         "a client that drip-feeds them is cut off then (default 10)"),
    "--request-timeout": ("request_timeout", float, 300.0,
                          "seconds an upload may take once its headers are in (default 300)"),
    "--max-connections": ("max_connections", int, 8,
                          "token holders' uploads and benchmarks served at once; more get 503 (default 8)"),
    "--max-unauthenticated": ("max_unauthenticated", int, 32,
                              "connections that have not shown the token yet; past it the oldest is cut off "
                              "(default 32)"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the agent on the network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    for flag, (dest, kind, default, text) in LIMITS.items():
        p.add_argument(flag, dest=dest, type=_positive(kind), default=default, help=text)
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (chain), e.g. a self-signed "
                   "one: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 "
                   "-subj /CN=edgeprune-agent -addext subjectAltName=IP:ADDRESS -keyout agent.key -out agent.crt")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (unencrypted PEM)")
    p.add_argument("--bundle", metavar="FILE", help="write the agent as one file (a zipapp) for a device, and exit")
    p.add_argument("--quiet", action="store_true", help="no request log")


def run(args: argparse.Namespace) -> int:
    if args.bundle:
        print(f"wrote {bundle(args.bundle)}: copy it to the device and run `python3 {Path(args.bundle).name} "
              "--port 8787` there (numpy and onnxruntime needed, not torch)")
        return 0
    limits = {dest: getattr(args, dest) for dest, *_ in LIMITS.values()}
    from .handler import remove_stale_uploads
    remove_stale_uploads()            # what agents killed mid-request left
    server = make_server(args.host, args.port, **limits, tls_cert=args.tls_cert, tls_key=args.tls_key,
                         quiet=args.quiet)
    if args.host not in ("127.0.0.1", "localhost", "::1") and server.tls is None:
        print(f"edgeprune agent: warning: listening on {args.host}: plain HTTP, the token travels in the clear; "
              "on an untrusted network use --tls-cert/--tls-key, or an SSH tunnel and the default 127.0.0.1",
              file=sys.stderr)
    pin = f"; certificate {server.tls_fingerprint} (pin it: EDGEPRUNE_AGENT_FINGERPRINT)" if server.tls else ""
    print(f"edgeprune agent listening on {server.url} (api {API_VERSION}, max upload "
          f"{args.max_upload_mb:g} MiB{pin})", flush=True)
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
    return run(build_parser("python -m edgeprune.agent").parse_args(argv))
