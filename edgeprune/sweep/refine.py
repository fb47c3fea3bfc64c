"""Screen, then refine: a wide, cheap sweep first; then more fine-tuning for the
trials worth it (by default the accuracy-vs-MACs Pareto front), as new rows linked
to their source, each with its total budget.

    refine("runs/wide", top=3, epochs=2)        # edgeprune refine runs/wide --top 3 --epochs 2
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from ..config import BASELINE
from ..errors import EdgepruneError
from ..run import RunFolder
from .engine import run_sweep
from .plan import REFINE, TrialSpec
from .progress import SilentProgress
from .sink import ArtifactSink
from .rebuild import trial_model


def refine_sources(run: RunFolder, trials: Sequence[str] = (), top: Optional[int] = None) -> list:
    """The trials to refine: the named ones, else the accuracy-vs-MACs Pareto front
    of the finished pruned trials (the `top` most accurate of it)."""
    if trials:
        return [run.find_trial(t, done=True) for t in trials]
    from ..pareto import pareto_mask
    done = [t for t in run.trials() if t.status == "done" and t.algorithm != BASELINE
            and t.spec.get("quantize", "none") == "none" and "macs" in t.metrics]
    if not done:
        raise EdgepruneError(f"{run.path} has no finished pruned trial to refine")
    mask = pareto_mask([t.metrics["macs"] for t in done], [t.metrics["accuracy"] for t in done])
    front = sorted((t for t, on in zip(done, mask) if on), key=lambda t: -t.metrics["accuracy"])
    return front[:top] if top else front


def refine(run_dir: str | Path, trials: Sequence[str] = (), top: Optional[int] = None, epochs: float = 1.0,
           progress: Optional[SilentProgress] = None, data_dir: Optional[str] = None,
           executor: Optional[str] = None) -> list[str]:
    """Fine-tune the chosen finished trials `epochs` more, from their kept models
    (rebuilt by running the seeded trial when none was kept); returns the new trial ids."""
    if not epochs > 0:
        raise EdgepruneError(f"--epochs {epochs:g}: refine needs more than 0 epochs")
    run = RunFolder(run_dir)
    cfg = run.config(data_dir=data_dir)
    if executor:
        cfg.executor = executor
    sources = refine_sources(run, trials, top)
    sink = ArtifactSink(str(cfg.storage or run.path))
    specs = []
    for src in sources:
        if src.spec.get("quantize", "none") != "none":
            raise EdgepruneError(f"trial {src.trial_id} is an {src.spec['quantize']} variant; refine the trial it "
                                 f"was made from ({src.metrics.get('fp32_trial_id')})")
        spec = TrialSpec.from_dict(src.spec)
        if sink.load_saved(src.metrics.get("model_path") or sink.model_uri(src.trial_id)) is None:
            model = trial_model(run.path, src.trial_id, data_dir=data_dir)      # rebuilt once, kept for it
            sink.save_model(spec, model, int(src.metrics["input_size"]))
        specs.append(replace(spec, parent=src.trial_id, stage=REFINE, budget=float(epochs)))
    run_sweep(cfg, progress=progress, extra=specs)
    return [s.trial_id for s in specs]
