"""Recovery without fine-tuning: `reconstruct(unpruned, pruned, images)` re-solves
every pruned model's conv and linear layer by ridge least squares, in forward
order, so that fed the pruned model's own inputs it reproduces the unpruned
layer's outputs on the channels it kept. No labels, no gradients.

A recovery method is any callable `method(unpruned, pruned, images, **options)
-> ReconstructReport` that changes `pruned` in place; `reconstruct` is the
built-in one (`lstsq`).
"""
from ..registry import RECOVERY
from .channels import compose_kept, derive_kept_outputs
from .reconstruct import collect_images, reconstruct
from .report import ReconstructReport

RECOVERY.add("lstsq", reconstruct)

__all__ = ["reconstruct", "ReconstructReport", "derive_kept_outputs", "compose_kept", "collect_images"]
