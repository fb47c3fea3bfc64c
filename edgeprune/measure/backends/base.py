"""The latency backend interface: a runtime the device uses, and how a trial's model
is measured in it.

A backend is a class in the latency-backend registry, made once per sweep for each
`measure.latency` entry (a config `LatencySpec`, every number filled in), so it may
hold a connection or a compiler. What a runtime must say:

    artifact(files, quantized) -> Path   its own file of the trial's model (default: the
                                         verified ONNX export, or its int8 quantization)
    compile_file(path, input_size)       its file made from a model file (default: the file)
    load(path) -> session                predict(session, images) -> logits (numpy)
    call(session, images)                one timed inference (default: predict)

What it gets: `measure(files, quantized)` = `time` (paired ABBA timing against the
unpruned model, measure.timing) + `assess` (file size, parity with PyTorch on real
test images, test accuracy in the runtime: checks.py). A backend that cannot run the
requested model returns None from `time`; one whose runtime is not installed fails
in one line naming the extra to install (`missing`).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import EdgepruneError
from ..latency import Measurement, spread
from ..timing import time_calls
from . import checks


class LatencyBackend:
    runs_onnx: bool = True       # what it runs: the ONNX export (or something made from it), or PyTorch
    requires: tuple[str, ...] = ()      # modules the runtime needs
    extra: str = ""                     # the pip extra that installs them
    suffix: str = ".onnx"               # the runtime file's
    offers_int8: bool = False           # it runs an int8 model (`artifact(files, quantized=True)`)
    remote: bool = False                # timed on another machine (a device), not this one

    def __init__(self, spec):
        self.spec = spec
        why = self.missing()
        if why:
            raise EdgepruneError(why)
        self._sessions: dict[str, object] = {}       # the model being measured: one at a time
        self._references: dict[str, object] = {}     # the unpruned models' sessions, kept

    @classmethod
    def missing(cls) -> Optional[str]:
        absent = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if absent:
            return (f"latency backend {cls.__name__.lower()} needs {', '.join(absent)}: "
                    f"pip install 'edgeprune[{cls.extra}]'")
        return None

    def size(self, files) -> int:
        """The input side it is measured at: the spec's, else the trial's."""
        return self.spec.input_size or files.input_size

    # -- the runtime ---------------------------------------------------------------------------------------------
    def artifact(self, files, quantized: bool) -> Path:
        size = self.size(files)
        return self.compile_file(files.int8(size) if quantized else files.onnx(size), size)

    def compile_file(self, path: Path, input_size: int) -> Path:
        return Path(path)

    def load(self, path: Path):
        raise NotImplementedError

    def predict(self, session, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def call(self, session, images: np.ndarray) -> None:
        self.predict(session, images)

    def file_bytes(self, path: Path) -> int:
        """What the device stores: the runtime's file (or files)."""
        return checks.stored_bytes(path)

    def checks_parity(self) -> bool:
        """Whether its file can be checked image by image against PyTorch."""
        return True

    def stored_files(self, path: Path) -> list[Path]:
        """The files its artifact at `path` consists of (what a release copies)."""
        return [Path(path)]

    @property
    def release_tag(self) -> str:
        """What its files are called in a release: model.<tag>.<suffix>."""
        return self.spec.backend

    def session(self, path: Path, reference: bool = False):
        """A loaded session of `path`: the model measured now (one kept at a time), or an
        unpruned reference (kept for the process)."""
        cache, key = (self._references if reference else self._sessions), str(path)
        if key not in cache:
            if not reference:
                cache.clear()
            cache[key] = self.load(path)
        return cache[key]

    # -- what it measures ----------------------------------------------------------------------------------------
    def measure(self, files, quantized: bool) -> Optional[Measurement]:
        timed = self.time(files, quantized)
        if timed is None:
            return None
        timed.extra.update(self.assess(files, quantized))
        return timed

    def time(self, files, quantized: bool) -> Optional[Measurement]:
        """Latency, each call paired with one of the unpruned model when the trial has one."""
        session = self.session(self.artifact(files, quantized))
        x = checks.random_inputs(self.spec.batch_size, self.size(files))
        reference = None
        if files.reference is not None:
            ref = self.session(self.artifact(files.reference, False), reference=True)
            reference = lambda: self.call(ref, x)     # noqa: E731
        s = self.spec
        times, info = time_calls(lambda: self.call(session, x), warmup=s.warmup, repeats=s.repeats,
                                 max_repeats=s.max_repeats, rel_ci=s.ci, reference=reference,
                                 min_seconds=s.min_seconds if reference is not None else 0.0)
        return spread(times, info)

    def assess(self, files, quantized: bool) -> dict:
        """The runtime file's size, its parity with PyTorch, test accuracy in the runtime."""
        path = self.artifact(files, quantized)
        out = {"file_bytes": self.file_bytes(Path(path))}
        if self.size(files) != files.input_size:
            return out
        session = self.session(path)
        if files.parity_images is not None and self.checks_parity():
            out.update(checks.parity(self, files, session, path, quantized))
        if files.test_batches is not None:
            out["accuracy"] = checks.accuracy(self, session, files.test_batches)
        return out
