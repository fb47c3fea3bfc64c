"""How a sweep's trials run, as opposed to what they compute (settings.py): where,
with which weights folder, under which limits. None of it joins a trial's identity."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import SweepConfig


@dataclass(frozen=True)
class RunOptions:
    run_dir: Path                        # the run folder (adapted heads are cached there)
    storage: str                         # where trial models and ONNX files go: the run folder or an fsspec URL
    save_models: bool = False            # keep every trial's model (else only those a later trial needs)
    device: str = "auto"                 # where trials fine-tune and evaluate
    weights_dir: Optional[str] = None    # published weight files, for offline use
    prune_timeout: Optional[float] = None

    @classmethod
    def from_config(cls, cfg: SweepConfig, run_dir: Path) -> "RunOptions":
        return cls(Path(run_dir), str(cfg.storage or run_dir), cfg.save_models, cfg.device, cfg.weights_dir,
                   cfg.prune.timeout_s)
