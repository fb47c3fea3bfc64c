"""Getting a trial's model back: from the file the sweep saved (`save_models: true`),
else by running the trial again (trials are seeded, so it is the same model up to
floating-point noise)."""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn
import yaml

from .. import artifacts
from ..config import load_config
from ..data import load_dataset
from ..errors import EdgepruneError
from ..store import ResultStore
from .plan import TrialSpec
from .trial import TrialContext, execute_trial


def trial_model(run_dir: str | Path, trial_id: str, data_dir: str | None = None) -> nn.Module:
    run_dir = Path(run_dir)
    with ResultStore(run_dir, create=False) as store:
        record = next((t for t in store.trials() if t.trial_id.startswith(trial_id)), None)
    if record is None:
        raise EdgepruneError(f"no trial {trial_id!r} in {str(run_dir)!r}; `edgeprune show` lists them")
    saved = record.metrics.get("model_path")
    if saved and artifacts.exists(saved):
        return artifacts.load_model(saved).eval()  # our own file, written by this run's sweep
    spec = TrialSpec.from_dict(record.spec)
    raw = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg = load_config(raw, data_dir=data_dir)
    data = load_dataset(cfg.dataset, seed=cfg.seed)
    model, _ = execute_trial(spec, TrialContext(spec.settings, data, run_dir))
    return model.eval()
