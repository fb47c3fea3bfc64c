"""LiteRT (TFLite) on this machine's CPU (the `litert` extra, and `edgeprune litert-env`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import EdgepruneError, first_line
from .base import LatencyBackend
from .litert_env import convert, missing_converter


class LiteRT(LatencyBackend):
    """LiteRT (TFLite): the PyTorch model converted by litert-torch to .tflite, run in
    ai-edge-litert's interpreter (XNNPACK on the CPU); int8 is ai-edge-quantizer's static
    quantization of that file (int8 weights and activations of the convolutions, fully
    connected layers, additions and pooling; other ops stay float), calibrated on the
    trial's calibration images. The conversion runs in LiteRT's own
    environment (litert_env.py) unless litert-torch is installed here."""
    requires = ("ai_edge_litert",)
    extra = "litert"
    suffix = ".tflite"
    offers_int8 = True

    @classmethod
    def missing(cls):
        return super().missing() or missing_converter()

    def compile_file(self, path, input_size):
        if Path(path).suffix != ".tflite":
            raise EdgepruneError(f"litert runs .tflite files, not {Path(path).name}: `edgeprune deploy RUN TRIAL "
                                 "--backend litert` converts a trial's model")
        return Path(path)

    def artifact(self, files, quantized):
        side, batch = self.size(files), self.spec.batch_size
        stem = files.folder / f"{files.stem}-{side}px-b{batch}"
        fp32, int8 = Path(f"{stem}.tflite"), Path(f"{stem}.int8.tflite")
        wanted = int8 if quantized else fp32
        if not wanted.is_file():
            self._convert(files, side, batch, fp32, int8 if quantized else None)
        return wanted

    def _convert(self, files, side: int, batch: int, fp32: Path, int8) -> None:
        """The trial's model as a torch.export program (what crosses to LiteRT's environment),
        converted there; with `int8`, quantized too, on the calibration images."""
        example = torch.zeros(batch, 3, side, side)
        program = fp32.with_suffix(".pt2")
        try:
            torch.export.save(torch.export.export(files.model.eval(), (example,)), str(program))
        except Exception as e:  # noqa: BLE001 - a model torch.export cannot trace: one line
            raise EdgepruneError(f"litert: torch.export could not trace the model: {type(e).__name__}: "
                                 f"{first_line(e, 200)}") from None
        job = {"program": str(program), "example": list(example.shape), "fp32": str(fp32),
               "int8": str(int8) if int8 else None, "calibration": None}
        if int8:
            images = np.concatenate(files.calibration_batches(side)).astype(np.float32)
            job["calibration"] = str(fp32.with_suffix(".calibration.npy"))
            np.save(job["calibration"], images)
        try:
            convert(job)
        finally:
            program.unlink(missing_ok=True)
            if job["calibration"]:
                Path(job["calibration"]).unlink(missing_ok=True)

    @staticmethod
    def _not_its_int8(files, quantized: bool) -> bool:
        """A QAT row's or an accuracy-controlled row's int8 is not what ai-edge-quantizer
        would make of the fp32 model: such rows are not measured in LiteRT."""
        return quantized and (getattr(files, "int8_fixed", False) or getattr(files, "max_drop", None) is not None)

    def time(self, files, quantized):
        return None if self._not_its_int8(files, quantized) else super().time(files, quantized)

    def assess(self, files, quantized):
        return {} if self._not_its_int8(files, quantized) else super().assess(files, quantized)

    def load(self, path):
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_path=str(path), num_threads=self.spec.threads)
        it.allocate_tensors()
        return it

    def predict(self, session, images):
        inp, out = session.get_input_details()[0], session.get_output_details()[0]
        results = []
        for i in range(0, len(images), self.spec.batch_size):
            part = np.ascontiguousarray(images[i:i + self.spec.batch_size], dtype=np.float32)
            if len(part) < self.spec.batch_size:
                part = np.concatenate([part, np.zeros((self.spec.batch_size - len(part), *part.shape[1:]),
                                                      np.float32)])
            session.set_tensor(inp["index"], _to_input(part, inp))
            session.invoke()
            results.append(_from_output(session.get_tensor(out["index"]), out)[:len(images) - i])
        return np.concatenate(results)

    def call(self, session, images):
        inp = session.get_input_details()[0]
        key = (id(session), id(images))
        if getattr(self, "_feed", (None,))[0] != key:        # the timed input, quantized once, not per call
            self._feed = (key, _to_input(images, inp))
        session.set_tensor(inp["index"], self._feed[1])
        session.invoke()


def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """float32 images as the model's input: quantized with its scale and zero point when
    the input is int8 (as the device's camera pipeline would feed it)."""
    if detail["dtype"] == np.float32:
        return x
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail["dtype"])


def _from_output(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale
