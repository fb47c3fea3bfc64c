"""Where a trial's artefacts go: its saved model and kept ONNX files, under the run
folder's layout (RunFolder) in the run's storage (the run folder, or an fsspec URL
that Ray workers on other machines can write)."""
from __future__ import annotations

from typing import Iterable, Optional

import torch.nn as nn

from ..artifacts import ArtifactStore, exists, read_bytes
from ..errors import EdgepruneError
from ..prune import saved
from ..run import RunFolder


class ArtifactSink:
    def __init__(self, storage: str, save_models: bool = False, save_onnx: bool = False):
        self.store = ArtifactStore(storage)
        self.save_models = save_models
        self.keeps_onnx = save_onnx or save_models

    @staticmethod
    def model_bytes(spec, model: nn.Module, input_size: int) -> bytes:
        """The trial's model in the format that loads without running code."""
        return saved.dumps(model, getattr(model, "edgeprune_history", []), spec.model, input_size)

    def model_uri(self, trial_id: str) -> str:
        return self.store.uri(RunFolder.model_file(trial_id))

    def save_model(self, spec, model: nn.Module, input_size: int) -> str:
        """Write the trial's model; returns where."""
        return self.put_model(spec.trial_id, self.model_bytes(spec, model, input_size))

    def put_model(self, trial_id: str, data: bytes) -> str:
        return self.store.put_bytes(RunFolder.model_file(trial_id), data)

    def keep_files(self, paths: Iterable) -> dict:
        """Keep ONNX files (deploy.save_onnx, or when trial models are saved): {file name: where}."""
        if not self.keeps_onnx:
            return {}
        return {p.name: self.store.put_bytes(RunFolder.onnx_file(p.name), p.read_bytes()) for p in paths}

    @staticmethod
    def load_saved(uri: Optional[str]) -> Optional[nn.Module]:
        """A model `save_model` wrote, or None when there is none, or it is not in the
        code-free format (then the trial is run again rather than the file unpickled)."""
        if not uri or not exists(uri):
            return None
        try:
            return saved.loads(read_bytes(uri), source=uri)
        except EdgepruneError:
            return None
