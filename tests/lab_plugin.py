"""An unpackaged plugin module, as a lab keeps next to its configs (`--plugin lab_plugin`):
a criterion, a dataset with options of its own, a latency backend and a layer type."""
import numpy as np
import torch
from pydantic import BaseModel, Field

from edgeprune import plugins
from edgeprune.data import DataSplits, ImageDataset
from edgeprune.measure.backends import LatencyBackend
from edgeprune.measure.latency import Measurement


@plugins.register_criterion("lab_energy", description="sum of squared weights (a lab's criterion)")
def energy(filters):
    return filters.weight.pow(2).sum(1)


class StripesOptions(BaseModel):
    model_config = {"extra": "forbid"}
    classes: int = Field(3, ge=2, le=10)
    per_class: int = Field(20, ge=1)


@plugins.register_dataset("stripes", options=StripesOptions, description="synthetic stripes, one angle per class")
def stripes(cfg) -> DataSplits:
    opts = StripesOptions(**cfg.options)
    rng = np.random.default_rng(0)

    def split(n):
        labels = np.repeat(np.arange(opts.classes), n)
        xx = np.arange(16)[None, :] + np.arange(16)[:, None] * labels[:, None, None]
        images = ((np.sin(xx / 2.0) + 1) * 100 + rng.integers(0, 40, size=xx.shape)).astype(np.uint8)
        images = np.repeat(images[:, None], 3, axis=1)
        return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels).long(),
                            [f"s{i}" for i in range(opts.classes)], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))

    return DataSplits("stripes", split(opts.per_class), split(max(2, opts.per_class // 2)))


@plugins.register_latency_backend("constant")
class Constant(LatencyBackend):
    """Reports a fixed 1.5 ms: enough to see a plugin backend's figures flow to the store."""
    runs_onnx = False

    def measure(self, files, quantized):
        return Measurement(1.5, 1.75, {"note": "constant"})
