"""What a rebuild reports, and the figures a trial stores from it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class ReconstructReport:
    rebuilt: list[str]                       # layers re-solved, in forward order
    skipped: dict[str, str]                  # layers left as pruned -> why
    seconds: float
    images: int                              # calibration images used
    waves: int                               # passes of the pruned model (memory bound)
    rows: dict[str, int] = field(default_factory=dict)   # sampled rows per rebuilt layer
    ridges: dict[str, float] = field(default_factory=dict)   # the ridge each rebuilt layer was solved with
    logit_error_before: Optional[float] = None   # |pruned - unpruned| / |unpruned| over the logits
    logit_error_after: Optional[float] = None
    error_images: int = 0                    # images the logit errors were measured on
    error_on: str = "calibration"            # ... "calibration" (the last wave's first ones) or "held-out"
    peak_memory_mb: Optional[float] = None   # process peak RSS during the call (CPU) or CUDA peak allocated
    settings: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """Flat figures for a trial's stored metrics."""
        return {"reconstruct_seconds": self.seconds, "reconstruct_images": self.images,
                "reconstruct_layers": len(self.rebuilt), "reconstruct_skipped": dict(self.skipped),
                "logit_error_pruned": self.logit_error_before, "logit_error_reconstructed": self.logit_error_after,
                "reconstruct_peak_mb": self.peak_memory_mb}

    def summary(self) -> str:
        err = ""
        if self.logit_error_before is not None and self.logit_error_after is not None:
            err = f", logit error {self.logit_error_before:.3f} -> {self.logit_error_after:.3f}"
        skipped = f", {len(self.skipped)} left as pruned ({', '.join(list(self.skipped)[:3])}" \
                  f"{'...' if len(self.skipped) > 3 else ''})" if self.skipped else ""
        return f"rebuilt {len(self.rebuilt)} layers from {self.images} images in {self.seconds:.1f} s{err}{skipped}"
