"""int8: onnxruntime static post-training quantization of an fp32 ONNX model,
calibrated on a few hundred training images (its accuracy: measure.onnx_accuracy).

Defaults follow onnxruntime's advice for CPUs: QDQ format, int8 weights quantized
per output channel, uint8 activations, min/max calibration, after onnxruntime's
pre-processing (shape inference and graph optimisation, which folds BatchNorm
into the convolutions first).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from ..errors import EdgepruneError, first_line
from ..scratch import as_tempdir


class QuantizeError(EdgepruneError):
    """Quantization failed."""


@dataclass
class QuantizeReport:
    path: Path
    source: Path
    size_bytes: int
    fp32_size_bytes: int
    calibration_images: int
    method: str
    per_channel: bool
    activation_type: str
    weight_type: str
    quant_format: str
    reduce_range: bool
    seconds: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"], d["source"] = str(self.path), str(self.source)
        return d


def as_numpy_batches(calibration, limit: int) -> list[np.ndarray]:
    """Up to `limit` images from an array, a tensor, or an iterable of batches /
    (images, labels) pairs, as float32 NCHW numpy batches."""
    if hasattr(calibration, "shape"):          # one array / tensor
        calibration = [calibration]
    batches, n = [], 0
    for item in calibration:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if hasattr(x, "detach"):
            x = x.detach().contiguous().cpu().numpy()
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32)[:limit - n])
        if len(x):
            batches.append(x)
            n += len(x)
        if n >= limit:
            break
    if not batches:
        raise QuantizeError("no calibration images: int8 calibration needs a few hundred training images")
    return batches


class _Reader:
    """onnxruntime's CalibrationDataReader over our batches, re-cut to the model's
    batch size (its static batch, or 32 when the batch axis is dynamic)."""

    def __init__(self, batches: list[np.ndarray], input_name: str, batch: int):
        data = np.concatenate(batches)
        self._items = [{input_name: np.ascontiguousarray(data[i:i + batch])}
                       for i in range(0, len(data) - batch + 1, batch)] or [{input_name: data[:batch]}]
        self._iter = iter(self._items)

    def get_next(self):
        return next(self._iter, None)

    def rewind(self):
        self._iter = iter(self._items)


def quantize_onnx(fp32_path: Union[str, Path], int8_path: Union[str, Path], calibration, *,
                  calibration_images: int = 256, method: str = "minmax", per_channel: bool = True,
                  activation_type: str = "uint8", weight_type: str = "int8", quant_format: str = "qdq",
                  reduce_range: bool = False, preprocess: bool = True, exclude: Sequence[str] = ()) -> QuantizeReport:
    """Quantize an fp32 ONNX model to int8 (static: activation ranges are calibrated on
    `calibration`, e.g. a BatchLoader over training images without augmentation).
    The nodes named in `exclude` stay in float (mixed precision)."""
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_static)

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    batches = as_numpy_batches(calibration, calibration_images)
    n_images = sum(len(b) for b in batches)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    for name, value, allowed in [("method", method, methods), ("activation_type", activation_type, types),
                                 ("weight_type", weight_type, types), ("quant_format", quant_format, formats)]:
        if value not in allowed:
            raise QuantizeError(f"{name} {value!r}: choose from {', '.join(allowed)}")
    session = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    static = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
    del session
    # onnxruntime's quantizer makes temporary files of its own: in the scratch folder they
    # are removed even if this process is killed meanwhile
    with as_tempdir(), tempfile.TemporaryDirectory(prefix="quant-") as tmp:
        source = fp32_path
        if preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process
            prepared = Path(tmp) / "prepared.onnx"
            try:
                quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
                source = prepared
            except Exception:   # pre-processing is an optimisation; quantize the plain model instead
                source = fp32_path
        reader = _Reader(batches, inp.name, static or min(32, n_images))
        try:
            quantize_static(str(source), str(int8_path.resolve()), reader, quant_format=formats[quant_format],
                            per_channel=per_channel, activation_type=types[activation_type],
                            weight_type=types[weight_type], reduce_range=reduce_range,
                            calibrate_method=methods[method], nodes_to_exclude=list(exclude))
        except Exception as e:
            raise QuantizeError(f"int8 quantization of {fp32_path.name} failed: {type(e).__name__}: "
                                f"{first_line(e)}") from e
    return QuantizeReport(int8_path, fp32_path, int8_path.stat().st_size, fp32_path.stat().st_size, n_images,
                          method, per_channel, activation_type, weight_type, quant_format, reduce_range,
                          time.perf_counter() - start)
