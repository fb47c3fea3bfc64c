"""Benchmarking model files where the agent runs (onnxruntime, OpenVINO, LiteRT), and
what the device is. Standard library at import time; numpy and the runtime are
imported when a benchmark runs. Sessions and timing are edgeprune's own
(deploy.onnx_session, measure.timing: torch-free, carried in the agent's bundle), so
the device times a model exactly as the host does."""
from __future__ import annotations

import os
import platform
import time
from typing import Optional

from ..deploy.onnx_session import make_session
from ..measure.cpu_features import cpu_int8
from ..measure.timing import percentile_stats, time_calls

API_VERSION = 1
# the most elements one input may have (1 GiB of float32): a model or a request
# naming a larger input is refused before anything is allocated
MAX_INPUT_ELEMENTS = 1 << 28
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
           "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
           "tensor(int64)": "int64", "tensor(bool)": "bool"}


# -- benchmarking (numpy + onnxruntime) ------------------------------------------

def input_feeds(session, batch_size: int, input_shape: Optional[list[int]], seed: int = 0) -> dict:
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
        elements = 1
        for d in shape:
            elements *= int(d)
        if elements > MAX_INPUT_ELEMENTS:
            raise ValueError(f"input {inp.name!r} of shape {'x'.join(map(str, shape))} has {elements:,} elements, "
                             f"more than the agent's limit of {MAX_INPUT_ELEMENTS:,}")
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise ValueError(f"input {inp.name!r} has type {inp.type}, which the agent cannot feed")
        if dtype.startswith("float"):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[inp.name] = np.zeros(shape, dtype=dtype)
    return feeds


def benchmark_onnx(model, *, threads: int = 1, warmup: int = 3, repeats: int = 20, batch_size: int = 1,
                   input_shape: Optional[list[int]] = None, max_seconds: Optional[float] = None,
                   providers: Optional[list[str]] = None, max_repeats: Optional[int] = None,
                   rel_ci: Optional[float] = None) -> dict:
    """Time runs of an ONNX model (path or bytes) after `warmup` untimed ones: `repeats`
    of them, or with `rel_ci` as many as it takes (up to `max_repeats`) for the
    median's 95 % confidence interval to be within +/- rel_ci (time_calls).

    Inputs are random (float) or zeros (integer) at the model's static shape, with a
    dynamic batch axis set to `batch_size`. With `max_seconds`, timing stops early
    once that much time has been spent (at least one timed run; `truncated` says so).
    Raises ModelLoadError when onnxruntime cannot load the model."""
    t0 = time.perf_counter()
    try:
        session = make_session(model, threads, providers)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelLoadError(one_line(e)) from None
    load_ms = (time.perf_counter() - t0) * 1000
    feeds = input_feeds(session, batch_size, input_shape)
    times, info = time_calls(lambda: session.run(None, feeds), warmup=warmup, repeats=repeats,
                             max_repeats=max_repeats, rel_ci=rel_ci, max_seconds=max_seconds)
    stats = percentile_stats(times)
    stats.update(repeats=info["repeats"], requested_repeats=repeats, warmup=warmup, threads=threads,
                 batch_size=batch_size, truncated=info["truncated"], load_ms=load_ms,
                 input_shapes={k: list(v.shape) for k, v in feeds.items()},
                 providers=session.get_providers())
    return stats


RUNTIMES = ("onnxruntime", "openvino", "litert")


def benchmark(model_path: str, runtime: str = "onnxruntime", **params) -> dict:
    """Time a model file in one of the runtimes the agent may have: onnxruntime and
    OpenVINO read ONNX (OpenVINO compiles it here, for this device), LiteRT a .tflite
    file. Raises ModelLoadError when the runtime cannot load it."""
    if runtime == "onnxruntime":
        return benchmark_onnx(model_path, **params)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; this agent runs {', '.join(RUNTIMES)}")
    import numpy as np
    threads, batch = params.get("threads", 1), params.get("batch_size", 1)
    t0 = time.perf_counter()
    try:
        if runtime == "openvino":
            import openvino as ov
            compiled = ov.Core().compile_model(model_path, "CPU", {
                "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
            request = compiled.create_infer_request()
            shape = [batch if (d.is_dynamic) else d.get_length() for d in compiled.input(0).get_partial_shape()]
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

            def run():
                request.infer({0: x})
        else:
            from ai_edge_litert.interpreter import Interpreter
            it = Interpreter(model_path=model_path, num_threads=threads)
            it.allocate_tensors()
            inp = it.get_input_details()[0]
            x = np.random.default_rng(0).standard_normal(inp["shape"]).astype(inp["dtype"])
            it.set_tensor(inp["index"], x)
            shape = list(inp["shape"])

            def run():
                it.invoke()
    except ImportError as e:
        raise ModelLoadError(f"{runtime} is not installed on this device ({e})") from None
    except Exception as e:  # the runtimes raise their own types
        raise ModelLoadError(one_line(e)) from None
    elements = 1
    for d in shape:
        elements *= int(d)
    if elements > MAX_INPUT_ELEMENTS:
        raise ValueError(f"input of shape {shape} is over the agent's limit of {MAX_INPUT_ELEMENTS:,} elements")
    load_ms = (time.perf_counter() - t0) * 1000
    times, info = time_calls(run, warmup=params.get("warmup", 3), repeats=params.get("repeats", 20),
                             max_repeats=params.get("max_repeats"), rel_ci=params.get("rel_ci"),
                             max_seconds=params.get("max_seconds"))
    stats = percentile_stats(times)
    stats.update(repeats=info["repeats"], truncated=info["truncated"], threads=threads, batch_size=batch,
                 load_ms=load_ms, runtime=runtime, input_shapes={"input": [int(d) for d in shape]})
    return stats


def runtimes() -> dict:
    """The runtimes installed here and their versions (None: absent)."""
    found = {}
    for name, module in (("onnxruntime", "onnxruntime"), ("openvino", "openvino"),
                         ("litert", "ai_edge_litert")):
        try:
            mod = __import__(module)
            found[name] = getattr(mod, "__version__", "installed")
        except ImportError:
            found[name] = None
    return found


class ModelLoadError(Exception):
    """The runtime could not load the model."""


def one_line(e: BaseException) -> str:
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
        "cpu_int8": cpu_int8(),       # its int8 instructions: whether int8 can pay there
    }
    try:
        import numpy
        import onnxruntime as ort
        info.update(numpy=numpy.__version__, onnxruntime=ort.__version__,
                    providers=ort.get_available_providers())
    except ImportError as e:  # reported, so the client sees why benchmarks fail
        info.update(onnxruntime=None, providers=[], import_error=str(e))
    info["runtimes"] = runtimes()
    return info
