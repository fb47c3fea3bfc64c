"""Getting a trial's model back: from the file the sweep saved (`save_models: true`,
or kept for a variant), else by running the trial again (trials are seeded, so it
is the same model up to floating-point noise). A saved file that is not in
edgeprune's code-free format (a pickled module from an older version) is never
unpickled: the trial is run again instead."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch.nn as nn

from ..data import DataSplits, load_dataset
from ..run import RunFolder
from .context import TrialContext
from .options import RunOptions
from .preflight import with_reconstruction_images
from .plan import TrialSpec
from .settings import TrialSettings
from .sink import ArtifactSink
from .trial import Parent, run_trial


def trial_model(run_dir: str | Path, trial_id: str, data_dir: Optional[str] = None,
                weights_dir: Optional[str] = None, data: Optional[DataSplits] = None) -> nn.Module:
    """The fine-tuned model of trial `trial_id` (a unique prefix will do); for a
    variant, the model it was made from. `data`: the run's data set, when the caller
    has read it already (it is read here only if the trial must be run again)."""
    run = RunFolder(run_dir)
    record = run.find_trial(trial_id)
    spec = TrialSpec.from_dict(record.spec).trained_twin()
    cfg = run.config(data_dir=data_dir, weights_dir=weights_dir, check_data=False)
    rows = {t.trial_id: t for t in run.trials()}
    twin = rows.get(spec.trial_id, record)
    ctx = None
    chain = [twin]      # back to the nearest trial whose model was kept (or the unpruned model)
    while True:
        model = ArtifactSink.load_saved(chain[-1].metrics.get("model_path"))
        if model is not None:
            break
        parent = chain[-1].spec.get("parent")
        if not parent:
            model = None
            break
        chain.append(rows[parent])
    try:
        for link in reversed(chain[:-1] if model is not None else chain):
            settings = TrialSettings.from_identity(link.spec["settings"])
            ctx = ctx or TrialContext(settings, with_reconstruction_images(
                                          settings.prune, data or load_dataset(cfg.dataset, seed=cfg.seed), cfg.seed, check=False),
                                      replace(RunOptions.from_config(cfg, run.path), device="cpu"))
            start = Parent(model, rows[link.spec["parent"]].metrics) if link.spec.get("parent") else None
            model = run_trial(TrialSpec.from_dict(link.spec).trained_twin(), ctx, parent=start).model
    finally:
        if ctx is not None:
            ctx.close()         # the unpruned model's files: not kept past this rebuild
    return model.eval()
