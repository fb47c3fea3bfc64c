"""Getting a trial's model back: from the file the sweep saved (`save_models: true`,
or kept for a variant), else by running the trial again (trials are seeded, so it
is the same model up to floating-point noise). A saved file that is not in
edgeprune's code-free format (a pickled module from an older version) is never
unpickled: the trial is run again instead."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch.nn as nn

from ..data import load_dataset
from ..run import RunFolder
from .context import TrialContext
from .plan import TrialSpec
from .trial import run_trial


def trial_model(run_dir: str | Path, trial_id: str, data_dir: Optional[str] = None,
                weights_dir: Optional[str] = None) -> nn.Module:
    """The fine-tuned model of trial `trial_id` (a unique prefix will do); for a
    variant, the model it was made from."""
    run = RunFolder(run_dir)
    record = run.find_trial(trial_id)
    spec = TrialSpec.from_dict(record.spec).trained_twin()
    cfg = run.config(data_dir=data_dir, weights_dir=weights_dir, check_data=False)
    saved = record.metrics.get("model_path")
    if saved:
        model = TrialContext.load_saved(saved)
        if model is not None:
            return model
    data = load_dataset(cfg.dataset, seed=cfg.seed)
    ctx = TrialContext(spec.settings, data, run.path, device="cpu", weights_dir=cfg.weights_dir)
    return run_trial(spec, ctx).model.eval()
