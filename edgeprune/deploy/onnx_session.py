"""An ONNX Runtime session as edgeprune checks and times models with. Standard
library at import time (onnxruntime is imported when a session is made): the device
agent's bundle carries this module too."""
from __future__ import annotations

from typing import Optional


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
