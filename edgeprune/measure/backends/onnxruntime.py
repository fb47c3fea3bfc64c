"""ONNX Runtime's CPU execution provider on this machine."""
from __future__ import annotations

import numpy as np

from ...deploy.onnx_session import make_session
from .base import LatencyBackend


class OnnxRuntime(LatencyBackend):
    """The verified ONNX file (or its int8 quantization) in onnxruntime, CPU provider."""
    requires = ("onnxruntime",)
    extra = "onnxruntime"
    offers_int8 = True                  # onnxruntime's static QDQ quantization (deploy.quantize)
    runs_int8_onnx = True               # that very file (what accuracy control's float layers are timed in)

    def load(self, path):
        return make_session(str(path), self.spec.threads)

    def predict(self, session, images):
        return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(images)})[0]
