"""Intel OpenVINO on this machine's CPU (the `openvino` extra; int8 by NNCF)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from pathlib import Path

import numpy as np

from ...errors import EdgepruneError
from .base import LatencyBackend


class OpenVINO(LatencyBackend):
    """Intel's OpenVINO runtime on this machine's CPU, from the verified ONNX file (saved
    as OpenVINO IR, model.xml + .bin); int8 is NNCF's post-training quantization of that
    IR, calibrated on the trial's calibration images. fp32 inference is asked for (no
    bf16 downcast)."""
    requires = ("openvino",)
    extra = "openvino"
    suffix = ".xml"
    offers_int8 = True                  # NNCF's post-training quantization

    def artifact(self, files, quantized):
        fp32 = self.compile_file(files.onnx(self.size(files)), self.size(files))
        return self.quantize(fp32, files) if quantized else fp32

    def quantize(self, xml: Path, files) -> Path:
        out = xml.with_name(xml.name.replace(".openvino.xml", f".nncf-int8-b{self.spec.batch_size}.xml"))
        if out.is_file():
            return out
        if importlib.util.find_spec("nncf") is None:
            raise EdgepruneError("openvino int8 is NNCF's quantization: pip install 'edgeprune[openvino]' (nncf)")
        import nncf
        import openvino as ov
        nncf.set_log_level(logging.ERROR)
        size, batch = self.size(files), self.spec.batch_size
        images = np.concatenate(files.calibration_batches(size))
        images = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
        model = ov.Core().read_model(str(xml))
        # A static batch: OpenVINO's CPU plugin ran this int8 graph wrongly with a dynamic one
        # (ResNet-20: top-1 agreement with fp32 fell from 100 % to 31 %, 91 % accuracy to 26 %)
        model.reshape([batch, 3, size, size])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):   # its progress bars
            quantized = nncf.quantize(model, nncf.Dataset(images), subset_size=len(images))
        ov.save_model(quantized, str(out), compress_to_fp16=False)
        return out

    def compile_file(self, path, input_size):
        import openvino as ov
        xml = Path(path).with_suffix(".openvino.xml")
        if not xml.is_file():
            ov.save_model(ov.Core().read_model(str(path)), str(xml), compress_to_fp16=False)
        return xml

    def stored_files(self, path):
        return [p for p in (Path(path), Path(path).with_suffix(".bin")) if p.is_file()]     # graph + weights

    def file_bytes(self, path):
        return sum(p.stat().st_size for p in self.stored_files(path))

    def load(self, path):
        import openvino as ov
        compiled = ov.Core().compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": self.spec.threads, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"})
        return compiled.create_infer_request()

    def predict(self, session, images):
        n, batch = len(images), session.model_inputs[0].get_partial_shape()[0]
        if batch.is_static and batch.get_length() > n:          # a static (int8) model: pad the last batch
            pad = np.zeros((batch.get_length() - n, *images.shape[1:]), images.dtype)
            images = np.concatenate([images, pad])
        return np.array(session.infer({0: np.ascontiguousarray(images)})[0])[:n]
