"""PyTorch eager on this machine's CPU."""
from __future__ import annotations

import torch

from ..latency import spread
from ..timing import time_calls
from .base import LatencyBackend


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
        return spread(times, info)
