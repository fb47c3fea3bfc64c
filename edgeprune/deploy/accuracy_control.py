"""int8 with a tolerance, for onnxruntime: the policy of NNCF's accuracy control, built
on onnxruntime's static QDQ quantization (deploy.quantize).

    report = quantize_with_accuracy_control(fp32, int8, calibration, held_out, max_drop=0.3)

1. Data-free preparation (deploy.equalize): cross-layer equalisation of Conv -> ReLU ->
   Conv pairs, then bias correction; kept only when it quantizes better on the held-out
   images than the plain graph (it can also move activation ranges the wrong way).
2. Post-training quantization of that graph.
3. The drop against the fp32 model, on held-out images (images that neither calibrate
   nor test: the reported accuracy stays the test set's): while it exceeds `max_drop`
   points (with `confidence`, while the upper end of its one-sided interval at that
   confidence does), the weight layer that loses the most is kept in float
   (onnxruntime's nodes_to_exclude), one by one. What a layer loses is how much closer
   the int8 model's logits come to the fp32 model's when that layer alone stays in
   float (its error on the held-out images; ranked once).

The report names the layers that stayed in float, and the plain int8 file is kept
beside the result, so that what they cost in time can be measured.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Optional, Sequence, Union

import numpy as np

from ..scratch import as_tempdir
from .quantize import QuantizeError, QuantizeReport, as_numpy_batches, quantize_onnx

WEIGHT_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


@dataclass
class ControlledReport:
    path: Path
    plain_path: Path                  # plain PTQ of the unprepared graph (what accuracy control started from)
    quantize: QuantizeReport          # the last quantization's settings and sizes
    max_drop: float                   # points
    held_out_images: int
    accuracy_fp32: float              # on the held-out images
    accuracy_plain: float             # plain int8, held-out
    accuracy: float                   # the result, held-out
    equalized_pairs: int              # Conv -> ReLU -> Conv pairs equalised
    bias_corrected: int               # layers whose bias was corrected
    prepared: bool                    # equalisation + bias correction kept (they helped)
    float_layers: list[str] = field(default_factory=list)      # kept in float, in the order they were
    layer_errors: dict[str, float] = field(default_factory=dict)   # what each layer's int8 costs (ranked)
    quantizations: int = 0
    seconds: float = 0.0
    drop_ci: float = 0.0              # 95 % half-width of the result's held-out drop, points (paired images)
    confidence: Optional[float] = None    # met when the drop's upper bound at this confidence is within max_drop

    @property
    def drop(self) -> float:
        """The result's drop against fp32 on the held-out images, in points."""
        return 100 * (self.accuracy_fp32 - self.accuracy)

    @property
    def bound(self) -> float:
        """The drop the tolerance is held to, in points: the measured one, or with
        `confidence` the upper end of its one-sided interval."""
        return upper_bound(self.drop, self.drop_ci, self.confidence)

    @property
    def met(self) -> bool:
        return self.bound <= self.max_drop + 1e-9

    @property
    def resolved(self) -> bool:
        """Whether the held-out images can tell a drop of max_drop from none: False when the
        tolerance is inside the drop's 95 % interval (too few images for it)."""
        return self.confidence is not None or self.max_drop >= self.drop_ci

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(path=str(self.path), plain_path=str(self.plain_path), quantize=self.quantize.to_dict(),
                 drop=self.drop, bound=self.bound, met=self.met)
        return d


def upper_bound(drop: float, ci95: float, confidence: Optional[float]) -> float:
    """The upper end of a drop's one-sided interval at `confidence`, from its 95 % half-width
    (None: the drop itself)."""
    if confidence is None:
        return drop
    return drop + ci95 / 1.96 * NormalDist().inv_cdf(confidence)


class _HeldOut:
    """Held-out images and labels, and the fp32 model's logits on them."""

    def __init__(self, held_out, threads: int):
        xs, ys = [], []
        for x, y in held_out:
            xs.append(np.ascontiguousarray(np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)))
            ys.append(np.asarray(y.numpy() if hasattr(y, "numpy") else y))
        if not xs:
            raise QuantizeError("accuracy control needs held-out images (training images that do not calibrate)")
        self.x, self.y, self.threads = np.concatenate(xs), np.concatenate(ys), threads
        self.reference: Optional[np.ndarray] = None

    def logits(self, path: Path) -> np.ndarray:
        from .onnx_session import make_session
        session = make_session(str(path), self.threads)
        inp = session.get_inputs()[0]
        static = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
        step, out = static or 250, []
        for i in range(0, len(self.x), step):
            x = self.x[i:i + step]
            if static and len(x) < static:          # a static batch: pad the last one
                x = np.concatenate([x, np.zeros((static - len(x), *x.shape[1:]), np.float32)])
            out.append(session.run(None, {inp.name: x})[0][:min(step, len(self.x) - i)])
        return np.concatenate(out)

    def accuracy(self, logits: np.ndarray) -> float:
        return float((logits.argmax(1) == self.y).mean())

    def drop_ci(self, logits: np.ndarray) -> float:
        """95 % half-width, in points, of the drop from the fp32 logits to `logits`: both are
        scored on the same images, so only the images on which they differ add noise."""
        d = (self.reference.argmax(1) == self.y).astype(np.float64) - (logits.argmax(1) == self.y)
        return float(100 * 1.96 * d.std() / np.sqrt(len(d))) if len(d) > 1 else float("inf")

    def drop_bound(self, logits: np.ndarray, confidence: Optional[float]) -> float:
        """The drop from the fp32 logits to `logits`, in points; with `confidence`, the
        upper end of its one-sided interval at that confidence."""
        drop = 100 * (self.accuracy(self.reference) - self.accuracy(logits))
        return drop if confidence is None else upper_bound(drop, self.drop_ci(logits), confidence)

    def error(self, logits: np.ndarray) -> float:
        """Mean squared difference from the fp32 logits, relative to their variance."""
        ref = self.reference
        return float(((logits - ref) ** 2).mean() / max(float(ref.var()), 1e-12))


def weight_layers(path: Union[str, Path]) -> list[str]:
    """The names of the layers with weights (Conv, Gemm, MatMul) of an ONNX file, in graph order."""
    import onnx
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in WEIGHT_OPS and n.name]


def quantize_with_accuracy_control(fp32_path: Union[str, Path], int8_path: Union[str, Path], calibration, held_out,
                                   max_drop: float, *, threads: int = 1, calibration_images: int = 256,
                                   prepare: bool = True, confidence: Optional[float] = None,
                                   **quantize_options) -> ControlledReport:
    """int8 within `max_drop` points of the fp32 model on `held_out` ((images, labels)
    batches), by data-free preparation, then layers kept in float one by one. With
    `confidence` (0.95), the drop's upper bound at that confidence must be within it."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .equalize import bias_shifts, equalize, with_corrected_biases

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    plain_path = int8_path.with_name(int8_path.name.replace(".onnx", "") + ".plain.onnx")
    start = time.perf_counter()
    batches = as_numpy_batches(calibration, calibration_images)
    data = _HeldOut(held_out, threads)
    count = 0

    def quantize(source: Path, out: Path, exclude: Sequence[str] = ()) -> tuple[QuantizeReport, np.ndarray]:
        nonlocal count
        count += 1
        report = quantize_onnx(source, out, batches, calibration_images=calibration_images, preprocess=False,
                               exclude=exclude, **quantize_options)
        return report, data.logits(out)

    with as_tempdir(), tempfile.TemporaryDirectory(prefix="accctl-") as tmp:
        tmp = Path(tmp)
        base = tmp / "prepared.onnx"
        try:      # onnxruntime's pre-processing folds BatchNorm into the convolutions first
            quant_pre_process(str(fp32_path), str(base), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - an optimisation only
            shutil.copy(fp32_path, base)
        data.reference = data.logits(base)
        acc_fp32 = data.accuracy(data.reference)
        plain, plain_logits = quantize(base, plain_path)
        best = (data.accuracy(plain_logits), -data.error(plain_logits))
        source, current, logits = onnx.load(str(base)), plain, plain_logits
        shifts: dict = {}
        pairs = corrected = 0
        kept = False
        if prepare:
            model = onnx.load(str(base))
            pairs = equalize(model)
            onnx.save(model, str(tmp / "equalized.onnx"))
            first, _ = quantize(tmp / "equalized.onnx", tmp / "equalized.int8.onnx")
            prep_shifts = bias_shifts(model, onnx.load(str(first.path)), batches)
            corrected = len(prep_shifts)
            onnx.save(with_corrected_biases(model, prep_shifts), str(tmp / "corrected.onnx"))
            report, prep_logits = quantize(tmp / "corrected.onnx", tmp / "corrected.int8.onnx")
            score = (data.accuracy(prep_logits), -data.error(prep_logits))
            if score > best:
                best, source, shifts, current, logits, kept = score, model, prep_shifts, report, prep_logits, True

        def mixed(exclude: list[str], out: Path):
            """int8 with `exclude` in float (their biases uncorrected: their weights stay fp32)."""
            onnx.save(with_corrected_biases(source, shifts, exclude), str(tmp / "source.onnx"))
            return quantize(tmp / "source.onnx", out, exclude=exclude)

        float_layers: list[str] = []
        errors: dict[str, float] = {}
        if data.drop_bound(logits, confidence) > max_drop:
            # rank: how far from fp32 each layer takes the model when it alone is int8
            layers = [n.name for n in source.graph.node if n.op_type in WEIGHT_OPS and n.name]
            for name in layers:
                _, alone = mixed([n for n in layers if n != name], tmp / "probe.int8.onnx")
                errors[name] = data.error(alone)
            # the closest to the tolerance so far: what is kept if no number of float layers meets it
            # (activations around the float layers stay int8, so even all of them may not)
            closest = (data.drop_bound(logits, confidence), current, logits, [])
            for name in sorted(errors, key=lambda n: -errors[n]):
                float_layers.append(name)
                current, logits = mixed(float_layers, tmp / "mixed.int8.onnx")
                bound = data.drop_bound(logits, confidence)
                if bound <= max_drop:
                    break
                if bound < closest[0]:
                    shutil.copy(current.path, tmp / "closest.int8.onnx")
                    closest = (bound, replace(current, path=tmp / "closest.int8.onnx"), logits, list(float_layers))
            else:
                _, current, logits, float_layers = closest
        shutil.copy(current.path, int8_path)
    current.path, current.source = int8_path, fp32_path
    current.size_bytes, current.fp32_size_bytes = int8_path.stat().st_size, fp32_path.stat().st_size
    current.seconds = time.perf_counter() - start
    return ControlledReport(int8_path, plain_path, current, max_drop, len(data.x), acc_fp32,
                            data.accuracy(plain_logits), data.accuracy(logits), pairs, corrected, kept, float_layers,
                            {k: errors[k] for k in sorted(errors, key=lambda n: -errors[n])}, count,
                            time.perf_counter() - start, data.drop_ci(logits), confidence)
