"""`latency`: time one model file in a runtime here, or on a device's agent, with the
same timing (and options) as a sweep."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import EdgepruneError, RunError
from .args import command, integer, number


def _time_here(args) -> dict:
    import numpy as np

    from ..agent.bench import device_info
    from ..config import MeasureConfig
    from ..measure.timing import percentile_stats, time_calls
    from ..registry import LATENCY_BACKENDS
    name = args.backend or "onnxruntime"
    if name not in LATENCY_BACKENDS or LATENCY_BACKENDS.canonical(name) in ("device", "torch"):
        raise EdgepruneError(f"--backend {name!r}: time a file in onnxruntime, openvino, tvm or litert here "
                             "(or --device URL)")
    spec = MeasureConfig(latency=[{"backend": name}], latency_threads=args.threads).latency_backends()[0]
    backend = LATENCY_BACKENDS.get(name)(spec)
    shape = _input_shape(Path(args.model), args.batch_size)
    try:
        session = backend.load(backend.compile_file(Path(args.model), shape[-1]))
    except EdgepruneError:
        raise
    except Exception as e:  # noqa: BLE001 - each runtime raises its own types
        raise EdgepruneError(f"{args.model}: {name} cannot load it: {type(e).__name__}: {e}") from None
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times, info = time_calls(lambda: backend.call(session, x), warmup=args.warmup, repeats=args.repeats,
                             max_repeats=args.max_repeats, rel_ci=args.ci or None)
    return {**percentile_stats(times), **info, "threads": args.threads, "batch_size": args.batch_size,
            "backend": name, "device": device_info()}


def _input_shape(path: Path, batch: int) -> list[int]:
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter
        return [int(d) for d in Interpreter(model_path=str(path)).get_input_details()[0]["shape"]]
    import onnx
    try:
        dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    except Exception as e:  # noqa: BLE001
        raise EdgepruneError(f"{path} is not an ONNX file ({type(e).__name__}); give an ONNX (or .tflite) "
                             "model") from None
    return [batch if i == 0 or not d.dim_value else d.dim_value for i, d in enumerate(dims)]


def _time_on_device(args) -> dict:
    from ..measure.agent_client import AgentClient, AgentError
    try:
        client = AgentClient(args.device, timeout=args.timeout)
    except ValueError as e:
        raise EdgepruneError(f"--device: {e}") from None
    try:
        return client.benchmark(args.model, threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                                batch_size=args.batch_size, runtime=args.backend or "onnxruntime",
                                max_repeats=args.max_repeats if args.ci else None, rel_ci=args.ci or None)
    except AgentError as e:       # refused (token, model, limits): fix the input (2); no answer, 5xx: a failed run (1)
        raise (EdgepruneError if 400 <= e.status < 500 else RunError)(str(e)) from None


def latency_command(args) -> int:
    if not Path(args.model).is_file():
        raise EdgepruneError(f"model {args.model!r} not found; give the path of an ONNX file")
    r = _time_on_device(args) if args.device else _time_here(args)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    dev = r.get("device", {})
    ci = f" (95 % CI +/-{100 * r['ci_rel']:.1f} %)" if "ci_rel" in r else ""
    print(f"{args.model}: median {r['median_ms']:.3f} ms{ci}, p90 {r['p90_ms']:.3f} ms over {r['repeats']} runs "
          f"({r['threads']} thread(s), batch {r['batch_size']}, {r.get('backend') or r.get('runtime', 'onnxruntime')})"
          f" on {dev.get('cpu', '?')} [{dev.get('hostname', '')}]")
    return 0


def add(sub) -> None:
    s = command(sub, "latency", "time a model file in a runtime here (onnxruntime, openvino, tvm, litert), or on a "
                "device's agent", latency_command)
    s.add_argument("model", help="ONNX file (or .tflite for litert)")
    s.add_argument("--device", help="URL of an `edgeprune agent` (token from $EDGEPRUNE_AGENT_TOKEN)")
    s.add_argument("--threads", type=integer(1, 256), default=1)
    s.add_argument("--warmup", type=integer(0, 1000), default=3)
    s.add_argument("--repeats", type=integer(1, 10000), default=20)
    s.add_argument("--batch-size", type=integer(1, 4096), default=1)
    s.add_argument("--timeout", type=number(0, 86_400, low_open=True), default=600.0,
                   help="seconds to wait for the agent")
    s.add_argument("--backend", help="onnxruntime (default), openvino, tvm or litert (a .tflite file)")
    s.add_argument("--ci", type=number(0, 0.99), default=0.03, help="repeat until the median's 95%% CI is within "
                   "this fraction (default 0.03; 0 for exactly --repeats)")
    s.add_argument("--max-repeats", type=integer(1, 1000000), default=300, help="the cap of those repeats")
    s.add_argument("--json", action="store_true", help="all statistics as JSON")
