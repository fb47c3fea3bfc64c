"""A trial's recovery stage, between pruning and fine-tuning: the pruned model's
BatchNorm statistics re-estimated (prune.recalibrate_bn), and its layers rebuilt by
least squares from unlabeled images (prune.reconstruct, by the method
prune.recovery names), so that accuracy before any SGD step says what the
architecture can do. It records the path: accuracy_pruned -> accuracy_recalibrated
-> accuracy_reconstructed (then accuracy, after fine-tuning)."""
from __future__ import annotations

import copy
from typing import Optional

from ..measure import evaluate
from ..registry import RECOVERY
from ..train import recalibrate_bn


def recover(t, ctx, result, parent: Optional[object] = None) -> None:
    """Recalibrate and rebuild `t.model` (pruned by `result`) in place, recording what
    each step reached; a cascade link rebuilds toward its parent's model (the model it
    was cut from, whose channels `result` names)."""
    p, spec, base = ctx.settings.prune, t.spec, t.base
    if not result.structured or result.removed_nothing:
        return
    rebuild = p.reconstruct > 0
    if p.recalibrate_bn:
        # with a rebuild to follow, the recalibration-only figure is measured on a copy: the rebuild
        # starts from the pruned model's own statistics, which its BatchNorm fold maps targets through
        recal_model = copy.deepcopy(t.model) if rebuild else t.model
        seconds = recalibrate_bn(recal_model, ctx.loaders.train(base, spec.seed), p.recalibrate_bn)
        if seconds:
            t.metrics.update(accuracy_recalibrated=evaluate(recal_model, ctx.loaders.test(base)),
                             recalibrate_seconds=seconds, recalibrate_batches=p.recalibrate_bn)
        del recal_model
    if rebuild:
        reference = ctx.models.teacher(base) if parent is None else ctx.on_device(copy.deepcopy(parent.model)).eval()
        images = ctx.loaders.reconstruction_images(base, spec.seed, p.reconstruct)
        report = RECOVERY.get(p.recovery)(reference, t.model, images, kept_outputs=result.kept_outputs or None,
                                          count=len(images), seed=spec.seed)
        t.metrics.update(report.metrics())
        t.metrics.update(accuracy_reconstructed=evaluate(t.model, ctx.loaders.test(base)),
                         reconstruct_method=p.recovery,
                         reconstruct_toward="parent" if parent is not None else "unpruned")
        if report.skipped:
            t.metrics["warning"] = (f"{len(report.skipped)} layer(s) were not rebuilt and keep their pruned "
                                    f"weights, the first: {next(iter(report.skipped))}: "
                                    f"{next(iter(report.skipped.values()))}")
