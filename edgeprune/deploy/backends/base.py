"""The backend interface: what a runtime does with a trial's model.

A backend is a class in the latency-backend registry, made once per sweep for each
configured `measure.latency` entry (so it may hold a connection or a compiler). It
covers the whole way to the device's runtime:

    artifact(files, quantized) -> Path     convert or compile: the runtime's own file
    load(path) -> session                  (cached per file)
    predict(session, images) -> logits     numpy in, numpy out
    call(session, images)                  one timed inference
    measure(files, quantized) -> Measurement | None   latency (median, p90, spread), the
                                           file's size, parity against PyTorch on real
                                           test images, and test accuracy in the runtime

`files` is the trial's TrialArtifacts (the PyTorch model, its verified ONNX export
and int8 quantization on demand). A backend that cannot run the requested model
returns None. A backend whose runtime is not installed fails in one line naming
the extra to install (`missing`).
"""
from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ...agent.bench import percentile_stats, time_calls
from ...errors import EdgepruneError
from ..export import ExportError, tolerance
from ..files import TrialArtifacts


@dataclass
class Measurement:
    median_ms: float
    p90_ms: float
    extra: dict = field(default_factory=dict)      # more metrics, stored as latency_<label>_<key>


def spread(times: list[float], info: dict) -> tuple[float, float, dict]:
    """(median, p90, the rest) of timed runs, for a Measurement."""
    st = percentile_stats(times)
    extra = {"ci_rel": st["ci_rel"], "iqr_ms": st["iqr_ms"], "p10_ms": st["p10_ms"], "ci_low_ms": st["ci_low_ms"],
             "ci_high_ms": st["ci_high_ms"], "repeats": info["repeats"]}
    if "reference_median_ms" in info:
        extra["reference_ms"] = info["reference_median_ms"]
        extra["relative"] = info["relative"]
    return st["median_ms"], st["p90_ms"], extra


class LatencyBackend:
    """The interface; `spec` is the config's LatencyBackend with every number filled in."""
    runs_onnx: bool = True       # what it runs: the ONNX export (or something made from it), or PyTorch
    requires: tuple[str, ...] = ()      # modules the runtime needs
    extra: str = ""                     # the pip extra that installs them
    suffix: str = ".onnx"               # the runtime file's

    def __init__(self, spec):
        self.spec = spec
        why = self.missing()
        if why:
            raise EdgepruneError(why)
        self._sessions: dict[str, object] = {}
        self._references: dict[str, object] = {}     # the unpruned models' sessions, kept

    @classmethod
    def missing(cls) -> Optional[str]:
        absent = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if absent:
            return (f"latency backend {cls.__name__.lower()} needs {', '.join(absent)}: "
                    f"pip install 'edgeprune[{cls.extra}]'")
        return None

    # -- the runtime ---------------------------------------------------------------------------------------------
    def size(self, files: TrialArtifacts) -> int:
        return self.spec.input_size or files.input_size

    def onnx_file(self, files: TrialArtifacts, quantized: bool) -> Path:
        size = self.size(files)
        return files.int8(size) if quantized else files.onnx(size)

    def artifact(self, files: TrialArtifacts, quantized: bool) -> Path:
        return self.compile_file(self.onnx_file(files, quantized), self.size(files))

    def compile_file(self, path: Path, input_size: int) -> Path:
        """The runtime's file made from a model file (default: the ONNX file itself)."""
        return Path(path)

    def load(self, path: Path):
        raise NotImplementedError

    def session(self, path: Path):
        key = str(path)
        if key not in self._sessions:
            self._sessions = {key: self.load(path)}       # one model at a time
        return self._sessions[key]

    def predict(self, session, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def call(self, session, images: np.ndarray) -> None:
        self.predict(session, images)

    # -- what it measures ----------------------------------------------------------------------------------------
    def inputs(self, files: TrialArtifacts) -> np.ndarray:
        rng = np.random.default_rng(0)
        side = self.size(files)
        return rng.standard_normal((self.spec.batch_size, 3, side, side)).astype(np.float32)

    def measure(self, files: TrialArtifacts, quantized: bool) -> Optional[Measurement]:
        """Latency (timing) and what the runtime's file is worth (assess)."""
        timed = self.time(files, quantized)
        if timed is None:
            return None
        timed.extra.update(self.assess(files, quantized))
        return timed

    def time(self, files: TrialArtifacts, quantized: bool) -> Optional[Measurement]:
        path = self.artifact(files, quantized)
        session = self.session(path)
        x = self.inputs(files)
        s = self.spec
        times, info = time_calls(lambda: self.call(session, x), warmup=s.warmup, repeats=s.repeats,
                                 max_repeats=s.max_repeats, rel_ci=s.ci, reference=self.reference_call(files, x),
                                 min_seconds=s.min_seconds if files.reference is not None else 0.0)
        median, p90, extra = spread(times, info)
        return Measurement(median, p90, extra)

    def reference_call(self, files: TrialArtifacts, x: np.ndarray):
        """One call of the unpruned fp32 model in this runtime (None without a reference)."""
        if files.reference is None:
            return None
        path = self.artifact(files.reference, False)
        if str(path) not in self._references:
            self._references[str(path)] = self.load(path)
        session = self._references[str(path)]
        return lambda: self.call(session, x)

    def assess(self, files: TrialArtifacts, quantized: bool) -> dict:
        """The runtime file's size, its parity with PyTorch, test accuracy in the runtime."""
        path = self.artifact(files, quantized)
        out = {"file_bytes": self.file_bytes(Path(path))}
        if self.size(files) != files.input_size:
            return out
        session = self.session(path)
        if files.parity_images is not None:
            out.update(self.verify(files, session, path, quantized))
        if files.test_batches is not None:
            out["accuracy"] = self.accuracy(session, files.test_batches)
        return out

    def file_bytes(self, path: Path) -> int:
        """What the device stores: the runtime's file (or files)."""
        return path.stat().st_size if path.is_file() else _folder_bytes(path)

    def verify(self, files: TrialArtifacts, session, path: Path, quantized: bool) -> dict:
        """Parity with PyTorch on the trial's test images (an int8 model: top-1
        agreement only); a runtime file that fails is moved aside and raises."""
        import torch
        x = files.parity_images
        with torch.no_grad():
            reference = files.model(torch.from_numpy(x)).float().numpy()
        got = np.concatenate([self.predict(session, x[i:i + 1]) for i in range(len(x))])
        diff = float(np.abs(got - reference).max())
        agree = float((got.argmax(1) == reference.argmax(1)).mean())
        if not quantized and not diff <= tolerance(files.deploy.parity_atol, reference):
            kept = Path(str(path) + ".failed")
            shutil.move(str(path), kept)
            raise ExportError(f"{type(self).__name__} parity check failed: max |runtime - torch| = {diff:.3g} on "
                              f"{len(x)} test images (top-1 agreement {100 * agree:.1f}%); moved to {kept}")
        return {"max_abs_diff": diff, "top1_agreement": agree}

    def accuracy(self, session, batches) -> float:
        correct = total = 0
        for images, labels in batches:
            x = images.contiguous().numpy()
            got = np.concatenate([self.predict(session, x[i:i + self.spec.batch_size])
                                  for i in range(0, len(x), self.spec.batch_size)])
            correct += int((got.argmax(1) == labels.numpy()).sum())
            total += len(labels)
        return correct / total if total else float("nan")


def _folder_bytes(path) -> int:
    p = Path(path)
    return sum(f.stat().st_size for f in p.parent.glob(p.stem + ".*")) if p.parent.is_dir() else 0


TIMING = ("ms", "p90_ms", "p10_ms", "ci_rel", "iqr_ms", "ci_low_ms", "ci_high_ms", "repeats", "reference_ms", "relative")


def architecture_signature(model, input_size: int) -> str:
    """The same for two models of the same architecture (module types and every
    parameter's and floating-point buffer's shape) at the same input size: what latency
    depends on. Integer buffers are left out: they are index maps (a CIFAR ResNet's
    shortcut lists the channels it carries over, 10 after one criterion, 11 after
    another, for the same layers), and a gather of one channel more is not a
    different network to time."""
    import hashlib
    h = hashlib.sha256(f"{type(model).__name__}|{input_size}".encode())
    buffers = [(n, t) for n, t in model.named_buffers() if t.is_floating_point()]
    for name, t in list(model.named_parameters()) + buffers:
        h.update(f"{name}:{tuple(t.shape)};".encode())
    for name, m in model.named_modules():
        h.update(f"{name}={type(m).__name__};".encode())
    return h.hexdigest()[:16]


def shared_timing(metrics: dict, label: str) -> dict:
    """The timing figures of one backend in a trial's metrics (what same-architecture trials share)."""
    return {k: metrics[f"latency_{label}_{k}"] for k in TIMING if f"latency_{label}_{k}" in metrics}


def measure_latencies(files: TrialArtifacts, backends: list[LatencyBackend], quantized: bool = False,
                      known: Optional[dict] = None) -> dict:
    """Latency on every backend: metrics latency_<label>_ms, latency_<label>_p90_ms and
    latency_<label>_<more> each, and latency_ms / latency_p90_ms / latency_threads /
    latency_backend / latency_batch_size / latency_input_size from the first that ran.
    `known` maps a backend label to timing figures already measured for this
    architecture in this run: they are used instead of timing it again."""
    metrics: dict = {}
    for b in backends:
        label = b.spec.label
        timing = (known or {}).get(label)
        if timing:
            m = Measurement(timing["ms"], timing["p90_ms"], {k: v for k, v in timing.items()
                                                            if k not in ("ms", "p90_ms")})
            m.extra.update(b.assess(files, quantized))
        else:
            m = b.measure(files, quantized)
        if m is None:
            continue
        metrics[f"latency_{label}_ms"] = m.median_ms
        metrics[f"latency_{label}_p90_ms"] = m.p90_ms
        for key, value in m.extra.items():
            metrics[f"latency_{label}_{key}"] = value
        if "latency_ms" not in metrics:
            metrics.update(latency_ms=m.median_ms, latency_p90_ms=m.p90_ms, latency_threads=b.spec.threads,
                           latency_backend=label, latency_batch_size=b.spec.batch_size,
                           latency_input_size=b.size(files), latency_ci_rel=m.extra.get("ci_rel"))
            if "relative" in m.extra:
                metrics["latency_relative"] = m.extra["relative"]
    metrics["arch_signature"] = architecture_signature(files.model, files.input_size) + ("-int8" if quantized else "")
    return metrics
