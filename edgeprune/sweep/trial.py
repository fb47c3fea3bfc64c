"""One trial, as the stages it runs: start -> prune -> fine-tune -> measure -> variants.

    outcome = run_trial(spec, ctx, variants=[int8_spec])
    outcome.metrics                    # the trained trial's row
    outcome.variants                   # {variant trial id: its row}, made from the same model

Each stage adds to the trial's metrics; `run_trial` raises when the trial fails
(a failing variant fails its own row only).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..measure.latency import architecture_signature, measure_latencies
from ..errors import EdgepruneError, first_line
from ..measure import count_macs, count_params, evaluate, model_size_bytes
from ..prune import prune_model
from ..registry import ALGORITHMS, VARIANTS
from ..train import finetune
from .limits import time_limit
from ..config import NO_VARIANT
from ..config.sections import LATENCY_TARGETS
from ..config.variants import variant_name
from .allocation import prepare, prune_allocated
from .context import TrialContext
from .recovery import recover
from .shared_timing import latency_target_ms, unpruned_ms
from .unpruned import UnprunedModel
from .plan import REFINE, RUNG, TrialSpec
from .trial_data import CALIBRATION_BATCHES


@dataclass
class TrialOutcome:
    model: nn.Module                                  # the fine-tuned model (on the CPU, eval mode)
    metrics: dict                                     # the trained trial's row
    variants: dict[str, dict] = field(default_factory=dict)   # variant trial id -> its row
    errors: dict[str, str] = field(default_factory=dict)      # variant trial id -> why it failed
    model_bytes: Optional[bytes] = None               # the model in edgeprune's file format, when it is kept


@dataclass
class Parent:
    """The trial a cascade link or a refinement starts from: its fine-tuned model and row."""
    model: nn.Module
    metrics: dict


@dataclass
class _Trial:
    """A trial in progress: what the stages hand on."""
    spec: TrialSpec
    base: UnprunedModel
    model: Optional[nn.Module] = None
    metrics: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


def run_trial(spec: TrialSpec, ctx: TrialContext, variants: Sequence[TrialSpec] = (),
              trained: Optional[dict] = None, parent: Optional[Parent] = None,
              keep_model: bool = False) -> TrialOutcome:
    """Run the trial `spec` and make its `variants` from its model. With `trained`
    (the metrics of the same trial, already done), the fine-tuned model is its saved
    one, and only the variants are made; without a saved model it is trained again.
    A cascade link or a refinement starts from `parent`. With `keep_model`, the
    outcome carries the model as a file's bytes (for the trials that start from it)."""
    t = _start(spec, ctx)
    reused = ctx.sink.load_saved((trained or {}).get("model_path")) if trained else None
    if reused is not None:
        t.model, t.metrics = reused, dict(trained)
    else:
        if spec.is_refinement:
            _continue(t, ctx, parent)
        else:
            _prune(t, ctx, parent)
        _finetune(t, ctx, epochs=spec.budget if spec.stage == REFINE else None,
                  steps=int(spec.budget) if spec.stage == RUNG else None)
        _measure(t, ctx)
        t.metrics["trial_seconds"] = time.perf_counter() - t.started
        if parent is not None:
            t.metrics.update(parent=spec.parent, chain_steps=parent.metrics.get("chain_steps",
                                                                                 parent.metrics.get("finetune_steps", 0))
                             + t.metrics["finetune_steps"])
        else:
            t.metrics["chain_steps"] = t.metrics["finetune_steps"]
    outcome = TrialOutcome(t.model, t.metrics)
    _variants(t, ctx, variants, outcome)
    if keep_model:
        outcome.model_bytes = ctx.sink.model_bytes(spec, t.model, t.base.input_size)
    return outcome


def task_weights(model) -> bool:
    """Trained weights with the task's own head (not random, head not replaced)."""
    meta = getattr(model, "edgeprune_meta", {})
    return meta.get("weights", "random") != "random" and not meta.get("head_replaced", True)


def _start(spec: TrialSpec, ctx: TrialContext) -> _Trial:
    base = ctx.unpruned(spec)
    return _Trial(spec, base, metrics={
        "input_size": base.input_size, "base_accuracy": base.accuracy,
        "normalization": {"mean": list(base.mean), "std": list(base.std)},
        "params_base": base.params, "macs_base": base.macs, "adapted": base.adapted,
        "task_weights": task_weights(base.model)})


def _continue(t: _Trial, ctx: TrialContext, parent: Optional[Parent]) -> None:
    """A refinement prunes nothing: it fine-tunes its parent's model further."""
    if parent is None:
        raise EdgepruneError(f"refining needs the model of trial {t.spec.parent}, which is not available")
    t.model = ctx.on_device(copy.deepcopy(parent.model))
    t.model.edgeprune_history = list(getattr(parent.model, "edgeprune_history", []))
    keep = ("layer_channels", "channel_ratio", "layer_rate", "structured", "sparsity", "prune_seconds")
    t.metrics.update({k: parent.metrics[k] for k in keep if k in parent.metrics})
    t.metrics["accuracy_pruned"] = parent.metrics.get("accuracy")     # where it starts: the parent's result


def _prune(t: _Trial, ctx: TrialContext, parent: Optional[Parent] = None) -> None:
    spec, base = t.spec, t.base
    if spec.is_baseline:
        t.model = ctx.on_device(copy.deepcopy(base.model))
        t.model.edgeprune_history = []
        t.metrics.update(accuracy_pruned=base.accuracy, prune_seconds=0.0, channel_ratio=0.0, layer_rate=0.0)
        return
    calibration = None
    if ALGORITHMS.get(spec.algorithm).needs_data:
        loader = ctx.loaders.train(base, spec.seed, augment=False)
        calibration = [b for _, b in zip(range(CALIBRATION_BATCHES), loader)]
    target = ctx.settings.target
    source = base.model if parent is None else parent.model     # a cascade link prunes its parent further
    prepared = prepare(t, ctx) if spec.is_allocated else None  # the run's sensitivity map etc., measured once
    with time_limit(ctx.options.prune_timeout, f"pruning {spec.model_label} ({spec.method} at {spec.rate_label})",
                    "raise prune.timeout_s, or target fewer layers"):
        if prepared is not None:
            result = prune_allocated(t, ctx, source, calibration, parent, prepared)
        elif spec.target_kind in LATENCY_TARGETS:
            result = _prune_to_latency(t, ctx, source, calibration)
        else:
            result = prune_model(source, spec.algorithm, spec.rate, base.input_size, kind=spec.target_kind,
                                 layers=target.layers, include=target.include, exclude=target.exclude,
                                 round_to=ctx.settings.round_to, seed=spec.seed, calibration=calibration,
                                 reference=None if parent is None else base.model)
    result.model.edgeprune_history = list(getattr(source, "edgeprune_history", None) or []) + result.history
    if parent is not None:       # channels against the original, as an independent trial reports them
        original = {n: c[0] for n, c in (parent.metrics.get("layer_channels") or {}).items()}
        result.layer_channels = {n: (original.get(n, c[0]), c[1]) for n, c in result.layer_channels.items()}
    t.model = ctx.on_device(result.model)
    t.metrics.update(accuracy_pruned=evaluate(t.model, ctx.loaders.test(base)), prune_seconds=result.seconds,
                     channel_ratio=result.channel_ratio, layer_rate=result.layer_rate,
                     structured=result.structured,
                     layer_channels={n: list(c) for n, c in result.layer_channels.items()})
    recover(t, ctx, result, parent)
    if result.sparsity is not None:
        t.metrics["sparsity"] = result.sparsity
    if result.removed_nothing:
        t.metrics["warning"] = (f"{spec.algorithm} at {spec.rate_label} removed no channel: the targeted "
                                f"layers ({', '.join(target.layers)}) share every group with layers that stay "
                                "whole; try target.layers: [conv2d, linear]")


def _prune_to_latency(t: _Trial, ctx: TrialContext, source: nn.Module, calibration):
    """Prune until the first latency backend times the model within 5 % of the target
    (searching the per-layer rate, as for params/macs targets)."""
    from ..prune.search import search_layer_rate
    spec, base, target = t.spec, t.base, ctx.settings.target
    backend = ctx.latency_backends[0]

    measured: dict[int, float] = {}
    # ms per unit of `relative`: the run's timing of the unpruned model, else the source's first
    reference = unpruned_ms(ctx, base, backend) if source is base.model else None
    scale: list[float] = [reference] if reference else []

    def latency(m: nn.Module) -> float:
        """The model's median latency; where the backend times it paired with the unpruned
        model, on the scale of the source's first timing (its relative figure over the
        source's), so that load which comes and goes between two probes does not steer
        the bisection."""
        files = ctx.deploy_files(f"{spec.trial_id}-probe", copy.deepcopy(m).to("cpu").eval(), base, spec.seed)
        try:
            timed = backend.time(files, False)
        finally:
            files.close()
        relative = timed.extra.get("relative")
        if relative and not scale:
            scale.append(timed.median_ms / relative)
        measured[id(m)] = relative * scale[0] if relative and scale else timed.median_ms
        return measured[id(m)]

    def prune_at(m: nn.Module, r: float):
        return prune_model(m, spec.algorithm, r, base.input_size, layers=target.layers, include=target.include,
                           exclude=target.exclude, round_to=ctx.settings.round_to, seed=spec.seed, calibration=calibration,
                           inplace=True)

    start_ms = latency(source)
    target_ms = latency_target_ms(spec, ctx, base, backend,
                                  lambda: start_ms if source is base.model else latency(base.model))
    t.metrics.update(latency_target_ms=target_ms, latency_unpruned_ms=start_ms)
    goal = 1.0 - target_ms / start_ms
    if goal <= 0:        # it is fast enough already: nothing to remove
        return prune_at(copy.deepcopy(source), 0.0)
    result = search_layer_rate(source, goal, prune_at, latency, what=f"latency on {backend.spec.label}",
                               base=start_ms, tolerance=0.05 * target_ms / start_ms)
    # what the search saw for the model it chose, and a fresh timing of it (the two differ by the noise)
    t.metrics["latency_search_ms"] = measured.get(id(result.model), float("nan"))
    scale.clear()                # a fresh, unscaled timing
    t.metrics["latency_reached_ms"] = latency(result.model)
    t.metrics["latency_scale"] = "run" if reference else "trial"
    return result


def _finetune(t: _Trial, ctx: TrialContext, epochs: Optional[float] = None, steps: Optional[int] = None) -> None:
    spec, base = t.spec, t.base
    teacher, settings = None, ctx.settings.finetune
    if settings.distill is not None and not spec.is_baseline:   # a baseline would distil itself
        if base.model.edgeprune_meta.get("head_replaced") and not base.adapted:
            raise EdgepruneError("finetune.distill: the teacher's new head is untrained; use finetune.order "
                                 "adapt_then_prune (with adapt_epochs > 0) to distil")
        teacher = ctx.models.teacher(base)
    cfg = settings
    if epochs is not None:           # refine: whole epochs more
        cfg = settings.model_copy(update={"epochs": epochs, "max_steps": None})
    elif steps is not None:          # a rung of find: this many steps more (as many epochs as that takes)
        cfg = settings.model_copy(update={"epochs": 10_000, "max_steps": steps})
    ft = finetune(t.model, ctx.loaders.train(base, spec.seed), cfg, seed=spec.seed, on_step=ctx.on_step,
                  teacher=teacher)
    t.metrics.update(accuracy=evaluate(t.model, ctx.loaders.test(base)), finetune_seconds=ft.seconds,
                     finetune_steps=ft.steps, finetune_epochs=ft.epochs, finetune_losses=ft.losses,
                     distilled=ft.distilled, quantize=NO_VARIANT)


def _measure(t: _Trial, ctx: TrialContext) -> None:
    """Cost of the fine-tuned model where it will run: a CPU (and each latency backend)."""
    spec, base, m = t.spec, t.base, t.metrics
    history = getattr(t.model, "edgeprune_history", [])
    t.model = t.model.to("cpu", memory_format=torch.contiguous_format).eval()
    t.model.edgeprune_history = history
    params, macs = count_params(t.model), count_macs(t.model, base.input_size)
    m.update(params=params, param_reduction=1 - params / base.params, macs=macs,
             mac_reduction=1 - macs / base.macs, size_bytes=model_size_bytes(t.model), size_kind="pytorch module")
    files = ctx.deploy_files(spec.trial_id, t.model, base, spec.seed)
    try:
        sig = architecture_signature(t.model, base.input_size)
        m.update(measure_latencies(files, ctx.latency_backends, known=ctx.timing.known(sig)))
        ctx.timing.unify(m)
        if ctx.sink.keeps_onnx:
            files.onnx()
        m.update(files.export_metrics())
        kept = ctx.sink.keep_files(files.files())
        onnx = files.exported()
        if onnx is not None and kept:
            m["onnx_path"] = kept[onnx.name]
    finally:
        files.close()
    if ctx.sink.save_models:
        m["model_path"] = ctx.sink.save_model(spec, t.model, base.input_size)


def _variants(t: _Trial, ctx: TrialContext, variants: Sequence[TrialSpec], outcome: TrialOutcome) -> None:
    """Each variant (int8, ...) of the fine-tuned model: its own row, made here from
    this model; a variant that fails fails its row only, and the model is saved so a
    retry of that variant needs no fine-tuning."""
    for v in variants:
        start = time.perf_counter()
        try:
            row = VARIANTS.get(variant_name(v.quantize))(t.model, t.metrics, ctx, t.base, v)
        except Exception as e:  # noqa: BLE001 - recorded in the variant's row
            if ctx.disk_full(e):
                raise                   # a full disk stops the sweep: nothing failed
            outcome.errors[v.trial_id] = f"{type(e).__name__}: {first_line(e)}"
            continue
        row["trial_seconds"] = time.perf_counter() - start
        outcome.variants[v.trial_id] = row
    if outcome.errors and "model_path" not in t.metrics:
        t.metrics["model_path"] = ctx.sink.save_model(t.spec, t.model, t.base.input_size)
