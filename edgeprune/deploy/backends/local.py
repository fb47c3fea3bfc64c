"""The runtimes on this machine: PyTorch eager, ONNX Runtime, OpenVINO and LiteRT, each
behind its own extra (`pip install "edgeprune[openvino]"`, ...); Apache TVM is in
tvm_compiler.py."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from ...agent.bench import make_session, time_calls
from ...errors import EdgepruneError, first_line
from ...registry import LATENCY_BACKENDS
from .base import LatencyBackend, Measurement, spread


@LATENCY_BACKENDS.register("torch")
class TorchEager(LatencyBackend):
    """PyTorch eager on this machine's CPU (no int8: the int8 model exists as ONNX only)."""
    runs_onnx = False

    def assess(self, files, quantized):
        return {}                     # the trial's own accuracy is PyTorch's

    @torch.inference_mode()
    def time(self, files, quantized):
        if quantized:
            return None
        s, model = self.spec, files.model
        previous, was_training = torch.get_num_threads(), model.training
        torch.set_num_threads(s.threads)
        model.eval()
        try:
            x = torch.randn(s.batch_size, 3, self.size(files), self.size(files))
            reference = files.reference.model.eval() if files.reference is not None else None
            times, info = time_calls(lambda: model(x), warmup=s.warmup, repeats=s.repeats,
                                     max_repeats=s.max_repeats, rel_ci=s.ci,
                                     reference=(lambda: reference(x)) if reference is not None else None,
                                     min_seconds=s.min_seconds if reference is not None else 0.0)
        finally:
            torch.set_num_threads(previous)
            model.train(was_training)
        median, p90, extra = spread(times, info)
        return Measurement(median, p90, extra)


@LATENCY_BACKENDS.register("onnxruntime")
class OnnxRuntime(LatencyBackend):
    """onnxruntime's CPU execution provider on this machine."""
    requires = ("onnxruntime",)
    extra = "onnxruntime"

    def load(self, path):
        return make_session(str(path), self.spec.threads)

    def predict(self, session, images):
        return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(images)})[0]


@LATENCY_BACKENDS.register("openvino")
class OpenVINO(LatencyBackend):
    """Intel's OpenVINO runtime on this machine's CPU, from the verified ONNX file (saved
    as OpenVINO IR, model.xml + .bin); int8 is NNCF's post-training quantization of that
    IR, calibrated on the trial's calibration images. fp32 inference is asked for (no
    bf16 downcast)."""
    requires = ("openvino",)
    extra = "openvino"
    suffix = ".xml"

    def artifact(self, files, quantized):
        fp32 = self.compile_file(files.onnx(self.size(files)), self.size(files))
        return self.quantize(fp32, files) if quantized else fp32

    def quantize(self, xml: Path, files) -> Path:
        import importlib.util
        out = xml.with_name(xml.name.replace(".openvino.xml", f".nncf-int8-b{self.spec.batch_size}.xml"))
        if out.is_file():
            return out
        if importlib.util.find_spec("nncf") is None:
            raise EdgepruneError("openvino int8 is NNCF's quantization: pip install 'edgeprune[openvino]' (nncf)")
        import logging

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

    def file_bytes(self, path):
        return sum(p.stat().st_size for p in (path, path.with_suffix(".bin")) if p.is_file())     # graph + weights

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


@LATENCY_BACKENDS.register("litert")
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


for _alias, _name in (("eager", "torch"), ("pytorch", "torch"), ("ort", "onnxruntime"), ("onnx", "onnxruntime"),
                      ("ov", "openvino"), ("tflite", "litert")):
    LATENCY_BACKENDS.alias(_alias, _name)
