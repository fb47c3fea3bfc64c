"""LiteRT (TFLite) on this machine's CPU (the `litert` extra)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import EdgepruneError, first_line
from .base import LatencyBackend


class LiteRT(LatencyBackend):
    """LiteRT (TFLite): the PyTorch model converted by litert-torch to .tflite, run in
    ai-edge-litert's interpreter (XNNPACK on the CPU). int8 is not offered: litert-torch's
    quantizer needs its own calibration recipe (README)."""
    requires = ("litert_torch", "ai_edge_litert")
    extra = "litert"
    suffix = ".tflite"

    def compile_file(self, path, input_size):
        if Path(path).suffix != ".tflite":
            raise EdgepruneError(f"litert runs .tflite files, not {Path(path).name}: `edgeprune deploy RUN TRIAL "
                                 "--backend litert` converts a trial's model")
        return Path(path)

    def artifact(self, files, quantized):
        side = self.size(files)
        path = files.folder / f"{files.stem}-{side}px.tflite"
        if not path.is_file():
            import litert_torch
            example = torch.zeros(self.spec.batch_size, 3, side, side)
            try:
                litert_torch.convert(files.model.eval(), (example,)).export(str(path))
            except Exception as e:  # noqa: BLE001
                raise EdgepruneError(f"litert-torch could not convert the model: {type(e).__name__}: "
                                     f"{first_line(e, 200)}") from None
        return path

    def time(self, files, quantized):
        return None if quantized else super().time(files, quantized)

    def assess(self, files, quantized):
        return {} if quantized else super().assess(files, quantized)

    def load(self, path):
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_path=str(path), num_threads=self.spec.threads)
        it.allocate_tensors()
        return it

    def predict(self, session, images):
        inp, out = session.get_input_details()[0], session.get_output_details()[0]
        results = []
        for i in range(0, len(images), self.spec.batch_size):
            part = np.ascontiguousarray(images[i:i + self.spec.batch_size])
            if len(part) < self.spec.batch_size:
                part = np.concatenate([part, np.zeros((self.spec.batch_size - len(part), *part.shape[1:]),
                                                      np.float32)])
            session.set_tensor(inp["index"], part)
            session.invoke()
            results.append(session.get_tensor(out["index"])[:len(images) - i])
        return np.concatenate(results)
