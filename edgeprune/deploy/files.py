"""The deployable files of one trial's model: the fp32 ONNX export (parity-checked
on real test images) and its int8 quantization, per input size, each made once when
first asked for, in a temporary folder that `close()` removes (under the process's
scratch folder, edgeprune.scratch, which is removed however the process ends)."""
from __future__ import annotations

import shutil
import tempfile
import weakref
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..scratch import folder as scratch_folder
from .export import ExportReport, export_onnx
from .accuracy_control import ControlledReport, quantize_with_accuracy_control
from .quantize import QuantizeError, QuantizeReport, as_numpy_batches, quantize_onnx


class TrialArtifacts:
    """STEM.onnx (fp32) and STEM.int8.onnx, with -SIZEpx before the suffix for other
    sizes than the trial's. `files()` lists what was made (to keep them). With
    `int8_options` {"max_drop": points}, int8 is made with accuracy control
    (deploy.accuracy_control), measured on `held_out(size, n, source)` labelled images
    (source: int8_options' held_out_from, "train" or "test")."""

    def __init__(self, model: nn.Module, input_size: int, deploy, stem: str, *,
                 check_images: Callable[[int], torch.Tensor],
                 calibration: Callable[[int], Iterable], test_batches: Optional[Iterable] = None,
                 held_out: Optional[Callable[[int, int, str], list]] = None):
        self.model, self.input_size, self.deploy, self.stem = model, input_size, deploy, stem
        self._check_images, self._calibration, self._held_out = check_images, calibration, held_out
        # how int8 is made: None, plain post-training quantization; {"max_drop": points,
        # "held_out": images, "held_out_from": "train" | "test"}: with accuracy control (a variant sets
        # it before any int8 file is made)
        self.int8_options: Optional[dict] = None
        self.controlled: dict[int, ControlledReport] = {}
        self.int8_fixed = False       # the int8 file is given (use_int8), not quantized from the fp32 one
        # what backends check their runtime's output against (real test images) and measure accuracy on
        self.parity_images = check_images(input_size)[:16].contiguous().numpy()
        self.test_batches = test_batches
        self.folder = Path(tempfile.mkdtemp(prefix="onnx-", dir=scratch_folder()))
        weakref.finalize(self, shutil.rmtree, str(self.folder), True)      # removed even if close() is missed
        # the unpruned model's files: backends time a model alternating with it, so that
        # their ratio (latency_<backend>_relative) does not move with the machine's load
        self.reference: Optional["TrialArtifacts"] = None
        self.exports: dict[int, ExportReport] = {}
        self._static: dict[tuple, Path] = {}
        self.quantized: dict[int, QuantizeReport] = {}

    def _name(self, size: int, suffix: str) -> Path:
        extra = "" if size == self.input_size else f"-{size}px"
        return self.folder / f"{self.stem}{extra}{suffix}"

    def onnx(self, size: Optional[int] = None) -> Path:
        """The fp32 ONNX file at `size` (default: the trial's input size)."""
        size = size or self.input_size
        if size not in self.exports:
            d = self.deploy
            self.exports[size] = export_onnx(
                self.model, self._name(size, ".onnx"), size,
                check_inputs=self._check_images(size), opset=d.opset, dynamic_batch=d.dynamic_batch,
                atol=d.parity_atol, exporter=d.exporter, check_images=d.parity_images)
        return self.exports[size].path

    def static_onnx(self, size: Optional[int] = None, batch: int = 1) -> Path:
        """The fp32 ONNX file with its batch fixed (compilers such as TVM want static shapes)."""
        size = size or self.input_size
        if not self.deploy.dynamic_batch and batch == 1:
            return self.onnx(size)
        key = (size, batch)
        if key not in self._static:
            d = self.deploy
            self._static[key] = export_onnx(
                self.model, self._name(size, f".static{batch}.onnx"), size, check_inputs=self._check_images(size),
                opset=d.opset, dynamic_batch=False, batch_size=batch, atol=d.parity_atol, exporter=d.exporter,
                check_images=d.parity_images).path
        return self._static[key]

    def int8(self, size: Optional[int] = None) -> Path:
        """The int8 ONNX file at `size`, quantized from the fp32 one."""
        size = size or self.input_size
        if size not in self.quantized and self.max_drop is not None:
            d = self.deploy
            report = quantize_with_accuracy_control(
                self.onnx(size), self._name(size, ".int8.onnx"), self._calibration(size),
                self.held_out_batches(size), self.max_drop, threads=torch.get_num_threads(),
                confidence=(self.int8_options or {}).get("confidence"),
                calibration_images=d.calibration_images, method=d.calibration_method, per_channel=d.per_channel,
                activation_type=d.activation_type, reduce_range=d.reduce_range)
            self.controlled[size], self.quantized[size] = report, report.quantize
        if size not in self.quantized:
            d = self.deploy
            self.quantized[size] = quantize_onnx(
                self.onnx(size), self._name(size, ".int8.onnx"), self._calibration(size),
                calibration_images=d.calibration_images, method=d.calibration_method, per_channel=d.per_channel,
                activation_type=d.activation_type, reduce_range=d.reduce_range)
        return self.quantized[size].path

    def use_int8(self, path: Path, method: str, seconds: float, size: Optional[int] = None,
                 calibration_images: int = 0) -> None:
        """Make `path` (an int8 QDQ ONNX file made elsewhere: quantization-aware training)
        this model's int8 file; runtimes then run it rather than quantize the fp32 one."""
        size = size or self.input_size
        path = Path(path)
        fp32 = self.onnx(size)
        self.quantized[size] = QuantizeReport(path, fp32, path.stat().st_size, fp32.stat().st_size,
                                              calibration_images, method, True, "uint8", "int8", "qdq", False,
                                              seconds)
        self.int8_fixed = True

    @property
    def max_drop(self) -> Optional[float]:
        """The accuracy int8 may lose (points), when made with accuracy control."""
        return (self.int8_options or {}).get("max_drop")

    def held_out_batches(self, size: Optional[int] = None) -> list:
        """(images, labels) of the images accuracy control measures on (int8_options' held_out
        of them, from held_out_from; neither the calibration images nor the test set)."""
        if self._held_out is None:
            raise QuantizeError("int8 with max_drop needs held-out images; this model's files have none")
        options = self.int8_options or {}
        n, source = int(options.get("held_out") or 1000), options.get("held_out_from", "train")
        batches = self._held_out(size or self.input_size, n, source)
        if not batches and source == "test":
            raise QuantizeError("int8 with max_drop and held_out_from: test: dataset.test_fraction leaves no test "
                                "images out to measure the drop on; set it below 1")
        if not batches:
            raise QuantizeError("int8 with max_drop: no training images are left after the calibration images "
                                "to measure the drop on; lower deploy.calibration_images")
        return batches

    @contextmanager
    def plain_int8(self, size: Optional[int] = None):
        """Within it, int8() is the plain quantization that accuracy control started from
        (to time what the layers kept in float cost)."""
        size = size or self.input_size
        report = self.controlled.get(size)
        if report is None:
            yield
            return
        kept = self.quantized[size]
        self.quantized[size] = replace(kept, path=report.plain_path, size_bytes=report.plain_path.stat().st_size)
        try:
            yield
        finally:
            self.quantized[size] = kept

    def static_int8(self, size: Optional[int] = None, batch: int = 1) -> Path:
        """The int8 file with its batch fixed (for compilers that want static shapes): the
        static fp32 export quantized as int8() was (the same layers kept in float), or
        the given int8 file (use_int8) as it is."""
        size = size or self.input_size
        if self.int8_fixed or (not self.deploy.dynamic_batch and batch == 1):
            return self.int8(size)
        key = (size, batch, "int8")
        if key not in self._static:
            self.int8(size)
            control, d = self.controlled.get(size), self.deploy
            self._static[key] = quantize_onnx(
                self.static_onnx(size, batch), self._name(size, f".static{batch}.int8.onnx"), self._calibration(size),
                calibration_images=d.calibration_images, method=d.calibration_method, per_channel=d.per_channel,
                activation_type=d.activation_type, reduce_range=d.reduce_range,
                exclude=control.float_layers if control else ()).path
        return self._static[key]

    def calibration_batches(self, size: Optional[int] = None) -> list:
        """The calibration images at `size` (deploy.calibration_images of them, float32 NCHW
        numpy batches): what int8 quantizers in other runtimes calibrate on."""
        return as_numpy_batches(self._calibration(size or self.input_size), self.deploy.calibration_images)

    def exported(self, size: Optional[int] = None) -> Optional[Path]:
        """The fp32 ONNX file at `size` (default: the trial's), if it was made."""
        report = self.exports.get(size or self.input_size)
        return report.path if report else None

    def int8_report(self, size: Optional[int] = None) -> QuantizeReport:
        """What quantizing to int8 at `size` measured (made on first use)."""
        self.int8(size)
        return self.quantized[size or self.input_size]

    def files(self) -> list[Path]:
        return [r.path for r in self.exports.values()] + [r.path for r in self.quantized.values()]

    def export_metrics(self) -> dict:
        """What the fp32 ONNX export at the trial's size measured, when one was made."""
        report = self.exports.get(self.input_size)
        if report is None:
            return {}
        return {"onnx_size_bytes": report.size_bytes, "onnx_max_abs_diff": report.max_abs_diff,
                "onnx_top1_agreement": report.top1_agreement, "onnx_export_seconds": report.seconds}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def resized(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x.contiguous()
    return F.interpolate(x.contiguous(), size=(size, size), mode="bilinear", align_corners=False)
