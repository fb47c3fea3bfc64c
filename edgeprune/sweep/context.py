"""What the trials of one process share: their settings, the data (loaders.py), the
unpruned models (unpruned.py), the latency backends and the timings already made,
and where artefacts go (sink.py).

A context is made from the sweep's settings and run options, so every process (the
local executor, each Ray worker) derives the same trials from the same inputs.
"""
from __future__ import annotations

import copy
from typing import Callable, Optional

import torch.nn as nn

from .. import scratch
from ..data import DataSplits
from ..diskspace import DiskFull, disk_full
from ..deploy.files import TrialArtifacts, resized
from ..measure.backends import make_backends
from ..run import RunFolder
from .options import RunOptions
from .settings import TrialSettings
from .allocation_inputs import AllocationInputs
from .shared_timing import SharedTiming
from .loaders import Loaders
from .sink import ArtifactSink
from .unpruned import UnprunedModel, UnprunedModels, resolve_device


class TrialContext:
    def __init__(self, settings: TrialSettings, data: DataSplits, options: RunOptions,
                 on_step: Optional[Callable[[int, int, float], None]] = None):
        self.settings, self.options, self.on_step = settings, options, on_step
        self.device = resolve_device(options.device)
        self.loaders = Loaders(settings, data, self.device)
        self.models = UnprunedModels(settings, self.loaders, self.device, RunFolder(options.run_dir),
                                     options.weights_dir)
        self.sink = ArtifactSink(options.storage, options.save_models, settings.deploy.save_onnx)
        self.latency_backends = make_backends(settings.latency_specs())
        self.timing = SharedTiming()          # one latency per architecture and backend (shared_timing)
        self.allocation = AllocationInputs(self)     # sensitivity maps, runtime profiles: measured once per run
        self._references: dict[int, TrialArtifacts] = {}

    def unpruned(self, spec) -> UnprunedModel:
        return self.models.get(spec, self.on_step)

    def on_device(self, model: nn.Module) -> nn.Module:
        return self.models.on_device(model)

    def deploy_files(self, stem: str, model: nn.Module, base: UnprunedModel, seed: int,
                     paired: bool = True) -> TrialArtifacts:
        """On-demand, verified ONNX / int8 files of a trial's model; with
        measure.latency_reference (and `paired`), paired with the unpruned model's (made
        once per unpruned model, kept for the process)."""
        s, loaders = self.settings, self.loaders
        check = loaders.parity_images(base)

        def calibration(size: int):
            return loaders.calibration(base, seed, size)

        def held_out(size: int, n: int, source: str = "train"):
            return loaders.held_out(base, seed, size, s.deploy.calibration_images, n, source)

        files = TrialArtifacts(model, base.input_size, s.deploy, stem, check_images=lambda size: resized(check, size),
                               calibration=calibration,
                               test_batches=loaders.host_test(base) if s.measure.backend_accuracy else None,
                               held_out=held_out)
        if s.measure.latency_reference and paired:
            if id(base) not in self._references:
                unpruned = copy.deepcopy(base.model).to("cpu").eval()
                self._references[id(base)] = TrialArtifacts(
                    unpruned, base.input_size, s.deploy, "unpruned", check_images=lambda size: resized(check, size),
                    calibration=calibration)
            files.reference = self._references[id(base)]
        return files

    def disk_full(self, exc: BaseException) -> Optional[DiskFull]:
        """`exc` as a DiskFull when a disk trials write to (the run folder, the scratch
        root) is full: then the sweep stops instead of recording the trial as failed."""
        return disk_full(exc, [self.options.run_dir, self.options.storage, scratch.root()])

    def close(self) -> None:
        """Remove the unpruned models' files (a process keeps one context at a time)."""
        for files in self._references.values():
            files.close()
        self._references.clear()
