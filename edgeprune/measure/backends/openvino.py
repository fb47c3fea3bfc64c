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
    IR, calibrated on the trial's calibration images; with max_drop, NNCF's accuracy control
    (quantize_with_accuracy_control: layers back to float until the drop on held-out
    training images holds). fp32 inference is asked for (no bf16 downcast)."""
    requires = ("openvino",)
    extra = "openvino"
    suffix = ".xml"
    offers_int8 = True                  # NNCF's post-training quantization

    def __init__(self, spec):
        super().__init__(spec)
        self._controlled: dict[str, dict] = {}      # int8 file -> what NNCF's accuracy control kept in float

    def artifact(self, files, quantized):
        if quantized and getattr(files, "int8_fixed", False):      # an int8 QDQ file made elsewhere (QAT)
            return self.read_int8(files.int8(self.size(files)), files)
        fp32 = self.compile_file(files.onnx(self.size(files)), self.size(files))
        return self.quantize(fp32, files) if quantized else fp32

    def read_int8(self, path: Path, files) -> Path:
        """An int8 QDQ ONNX file as OpenVINO IR (its QDQ pairs become int8 kernels), at a
        static batch (as NNCF's: see quantize)."""
        import openvino as ov
        out = Path(path).with_name(Path(path).name.replace(".onnx", f".b{self.spec.batch_size}.openvino.xml"))
        if not out.is_file():
            model = ov.Core().read_model(str(path))
            model.reshape([self.spec.batch_size, 3, self.size(files), self.size(files)])
            ov.save_model(model, str(out), compress_to_fp16=False)
        return out

    def quantize(self, xml: Path, files) -> Path:
        max_drop = getattr(files, "max_drop", None)
        tag = f".nncf-int8-b{self.spec.batch_size}" + ("" if max_drop is None else f"-drop{max_drop:g}")
        out = xml.with_name(xml.name.replace(".openvino.xml", f"{tag}.xml"))
        if out.is_file():
            return out
        if importlib.util.find_spec("nncf") is None:
            raise EdgepruneError("openvino int8 is NNCF's quantization: pip install 'edgeprune[openvino]' (nncf)")
        import nncf
        import openvino as ov
        size, batch = self.size(files), self.spec.batch_size
        images = np.concatenate(files.calibration_batches(size))
        images = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
        model = ov.Core().read_model(str(xml))
        # A static batch: OpenVINO's CPU plugin ran this int8 graph wrongly with a dynamic one
        # (ResNet-20: top-1 agreement with fp32 fell from 100 % to 31 %, 91 % accuracy to 26 %)
        model.reshape([batch, 3, size, size])
        with _nncf_log() as log, contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):   # its progress bars
            if max_drop is None:
                quantized = nncf.quantize(model, nncf.Dataset(images), subset_size=len(images))
            else:       # NNCF's accuracy control: layers go back to float until the drop holds
                held = _batched(files.held_out_batches(size), batch)
                quantized = nncf.quantize_with_accuracy_control(
                    model, nncf.Dataset(images), nncf.Dataset(held), _accuracy, max_drop=max_drop / 100,
                    drop_type=nncf.DropType.ABSOLUTE, subset_size=len(images))
        if max_drop is not None:
            self._controlled[str(out)] = {"float_layers": ", ".join(_reverted(log)),
                                          "float_layer_count": len(_reverted(log)),
                                          "held_out_images": sum(len(y) for _, y in held)}
        ov.save_model(quantized, str(out), compress_to_fp16=False)
        return out

    def assess(self, files, quantized):
        out = super().assess(files, quantized)
        if quantized:
            out.update(self._controlled.get(str(self.artifact(files, quantized)), {}))
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


def _batched(held_out: list, batch: int) -> list:
    """(images, labels) numpy pairs of exactly `batch` images (the int8 model's static batch)."""
    x = np.concatenate([np.asarray(a.numpy() if hasattr(a, "numpy") else a, dtype=np.float32) for a, _ in held_out])
    y = np.concatenate([np.asarray(b.numpy() if hasattr(b, "numpy") else b) for _, b in held_out])
    return [(np.ascontiguousarray(x[i:i + batch]), y[i:i + batch]) for i in range(0, len(x) - batch + 1, batch)]


def _accuracy(compiled, items) -> float:
    """NNCF's validation function: top-1 accuracy of a compiled model on (images, labels)."""
    output = compiled.outputs[0]
    correct = total = 0
    for x, y in items:
        correct += int((np.asarray(compiled(x)[output]).argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _nncf_log():
    """NNCF's log, kept (what accuracy control reverted to float) and not printed."""
    import nncf  # noqa: F401 - its logger
    logger = logging.getLogger("nncf")
    saved = logger.level, [(h, h.level) for h in logger.handlers]
    for h in logger.handlers:
        h.setLevel(logging.ERROR)
    capture = _Lines()
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        yield capture.lines
    finally:
        logger.removeHandler(capture)
        logger.setLevel(saved[0])
        for h, level in saved[1]:
            h.setLevel(level)


def _reverted(lines: list[str]) -> list[str]:
    """The operations NNCF's accuracy control put back in float (from its summary line)."""
    for line in reversed(lines):
        if "reverted back to the floating-point precision" in line:
            return [n.strip() for n in line.split("\n")[1:] if n.strip()]
    return []
