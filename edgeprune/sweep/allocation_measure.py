"""How the shared inputs of allocated trials are measured from a trial context
(allocation_inputs.py keeps and stores them): the sensitivity map on the training
split's images, the runtime's channel multiple and the latency model in the
latency backends, as trials are timed."""
from __future__ import annotations

import math
from dataclasses import replace
from functools import reduce
from typing import Optional

import torch

from ..allocate import LatencyModel, RuntimeProfile, SensitivityMap, fast_multiple, measure_sensitivity, prune_to_widths
from ..allocate.latency import fit_latency_model
from ..allocate.rounding import probe_network
from ..measure.latency import Measurement
from ..prune import PruneRequest, example_input
from ..registry import ALGORITHMS
from .trial_data import calibration_batches, labelled_images

MAP_BATCH = 128            # images per batch of the map's loss (BatchNorm normalises by each batch's statistics)
SHAPE_ALGORITHM = "l1"      # what prunes the networks that are only timed: shapes, not channels, set latency


def request(ctx, spec, base, calibration=None) -> PruneRequest:
    t = ctx.settings.target
    return PruneRequest(example_input(base.input_size), tuple(t.layers), tuple(t.include), tuple(t.exclude), None,
                        spec.seed, calibration)


def time_once(ctx, model, base, seed: int, stem: str, backend=None, paired: bool = True) -> Measurement:
    """One timing of `model` in `backend` (default: the first), as trials are timed
    (paired with the unpruned model where measure.latency_reference says so)."""
    backend = backend or ctx.latency_backends[0]
    files = ctx.deploy_files(stem, model.to("cpu").eval(), base, seed, paired=paired)
    try:
        return backend.time(files, False)
    finally:
        files.close()


def multiple_of(settings, profiles: dict[str, RuntimeProfile]) -> int:
    """The channel multiple allocated widths keep: allocate.round_to, else the largest
    any backend needs (they are powers of two), with the sweep's round_to folded in."""
    if settings.allocate.round_to != "auto":
        return int(settings.allocate.round_to)
    found = [p.multiple for p in profiles.values()] + [settings.round_to or 1]
    return reduce(lambda a, b: a * b // math.gcd(a, b), found, 1)


def measure_runtime(ctx, spec, base, inputs) -> dict[str, RuntimeProfile]:
    """Each latency backend's profile, timed on a probe network at the resolution where
    the model spends the most MACs."""
    structure = inputs.structure(spec, base)
    by_side: dict[int, int] = {}
    for layer in structure.layers:
        if layer.kind != "linear":
            by_side[layer.resolution] = by_side.get(layer.resolution, 0) + layer.macs
    side = max(4, max(by_side, key=by_side.get) if by_side else base.input_size)
    out = {}
    for backend in ctx.latency_backends:
        def time_at(channels: int, backend=backend) -> float:
            torch.manual_seed(0)
            m = time_once(ctx, probe_network(channels, side, base.input_size), base, spec.seed, f"probe{channels}",
                          backend, paired=False)
            return m.extra.get("p10_ms", m.median_ms)
        out[backend.spec.label] = fast_multiple(time_at, backend.spec.label)
    return out


def fit_latency(ctx, spec, base, inputs) -> LatencyModel:
    """The first backend's latency model: networks pruned to sampled widths, timed whole."""
    structure = inputs.structure(spec, base)
    profiles = inputs.runtime(spec, base)
    backend = ctx.latency_backends[0]
    block = profiles[backend.spec.label].block
    req = request(ctx, spec, base)
    first = time_once(ctx, base.model, base, spec.seed, "latency-model-unpruned")
    relative = first.extra.get("relative") is not None
    reference_ms = first.extra.get("reference_ms", first.median_ms) if relative else first.median_ms

    def timer(widths) -> float:
        pruned = prune_to_widths(base.model, SHAPE_ALGORITHM, structure, widths, req).model
        m = time_once(ctx, pruned, base, spec.seed, "latency-model")
        return m.extra["relative"] if relative else m.median_ms

    a = ctx.settings.allocate
    return fit_latency_model(structure, timer, backend.spec.label, block, multiple_of(ctx.settings, profiles),
                             "relative" if relative else "ms", reference_ms, a.latency_networks or 0,
                             min(a.widths), spec.seed)


def rebuilds(settings) -> bool:
    a = settings.allocate
    return a.rebuild is True or (a.rebuild == "auto" and settings.prune.reconstruct > 0)


def measure_map(ctx, spec, base, inputs) -> SensitivityMap:
    s, a = ctx.settings, ctx.settings.allocate
    structure = inputs.structure(spec, base)
    images, labels = labelled_images(ctx, base, spec.seed, a.images)
    pruner = ALGORITHMS.get(spec.algorithm)
    req = request(ctx, spec, base, calibration_batches(ctx, base, spec.seed) if pruner.needs_data else None)

    def prune_group(model, ratios):
        with torch.enable_grad():
            return pruner(model, 0.0, replace(req, layer_ratios=ratios))

    def rebuild(unpruned, pruned, result) -> None:
        from ..recover import reconstruct
        reconstruct(unpruned, pruned, images, kept_outputs=result.kept_outputs or None,
                    layers=sorted(result.removed_inputs) or None, seed=spec.seed)

    def to_device(model):
        model = ctx.on_device(model)
        return model.to(memory_format=torch.channels_last) if s.finetune.channels_last else model

    info = {"model": spec.model_label, "algorithm": spec.algorithm, "seed": spec.seed, "input_size": base.input_size,
            "layers": {g.name: list(g.layers) for g in structure.groups}}
    return measure_sensitivity(base.model, prune_group, structure, images, labels, a.widths,
                               rebuild if rebuilds(s) else None, batch_size=MAP_BATCH,
                               max_seconds=a.max_seconds, info=info, to_device=to_device)


def predicted_ms(model: Optional[LatencyModel], structure, widths) -> Optional[float]:
    return None if model is None else model.ms(model.cost(structure).total(widths))
