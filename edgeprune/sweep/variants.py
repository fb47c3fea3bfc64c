"""Variants of a fine-tuned model (the `quantize:` sweep dimension): each is a row
of its own, made from its twin's model in the same task, so nothing is pruned or
fine-tuned twice.

A variant is `make(model, metrics, ctx, base, spec) -> metrics` in the variant
registry; `int8` (with options: `int8(max_drop=0.3)`, accuracy control) and `qat`
are built in. Options come from the spec's entry (config.variants).
"""
from __future__ import annotations

from typing import Optional

import copy

import torch

from ..config.variants import variant_options
from ..errors import EdgepruneError
from ..measure.accuracy import onnx_accuracy
from ..measure.int8_speed import speed_against_twin
from ..measure.latency import architecture_signature, measure_latencies


# the twin's metrics a variant does not inherit: it measures its own
NOT_INHERITED = ("latency_", "onnx_", "trial_seconds", "size_bytes", "accuracy", "cpu_int8", "int8_")
# (model_path: the twin's)


def int8(model, trained: dict, ctx, base, spec) -> dict:
    """onnxruntime static post-training quantization of the twin's model, calibrated on
    training images; accuracy measured in onnxruntime on the test set, size of the
    int8 file, latency on every backend that runs ONNX. With max_drop, accuracy
    control (deploy.accuracy_control; NNCF's own in OpenVINO)."""
    options = variant_options(spec.quantize)
    return quantized_row(model, trained, ctx, base, spec, max_drop=options.max_drop, held_out=options.held_out,
                         held_out_from=options.held_out_from, confidence=options.confidence)


def qat(model, trained: dict, ctx, base, spec) -> dict:
    """Quantization-aware fine-tuning of the twin's fine-tuned model (deploy.qat: PT2E
    fake quantization, `steps` steps of the configured optimiser), exported as a QDQ int8
    ONNX file and measured like `int8`. Nothing is pruned or fine-tuned again: it starts
    from the twin's model, in the same task (or from its saved model on a retry)."""
    from ..deploy.qat import missing, qat_int8
    why = missing()
    if why:
        raise EdgepruneError(why)
    options = variant_options(spec.quantize)
    settings = ctx.settings.finetune
    lr = options.lr if options.lr is not None else settings.lr / 10

    def make(files) -> dict:
        report = qat_int8(ctx.on_device(copy.deepcopy(model)), ctx.loaders.train(base, spec.seed), settings,
                          options.steps, lr, files.folder / f"{files.stem}.qat.int8.onnx", base.input_size,
                          torch.from_numpy(files.parity_images), files.calibration_batches(base.input_size),
                          calibration_images=ctx.settings.deploy.calibration_images, seed=spec.seed,
                          dynamic_batch=ctx.settings.deploy.dynamic_batch)
        files.use_int8(report.path, "qat", report.seconds + report.export_seconds,
                       calibration_images=ctx.settings.deploy.calibration_images)
        return {"qat_steps": report.steps, "qat_lr": report.lr, "qat_seconds": report.seconds,
                "qat_losses": report.losses, "qat_export_max_abs_diff": report.max_abs_diff,
                "qat_export_top1_agreement": report.top1_agreement}

    return quantized_row(model, trained, ctx, base, spec, make=make, signature="-qat")


def quantized_row(model, trained: dict, ctx, base, spec, *, max_drop: Optional[float] = None,
                  held_out: int = 1000, held_out_from: str = "train", confidence: Optional[float] = None,
                  make=None, signature: str = "-int8") -> dict:
    """The row of an int8 file made from `model` (the twin's fine-tuned model), measured
    like every model and compared with the fp32 twin's row `trained`. `make(files)`
    makes the int8 file itself (files.use_int8) and returns metrics of its own."""
    twin_id = spec.trained_twin().trial_id
    metrics = {k: v for k, v in trained.items() if not k.startswith(NOT_INHERITED)}
    metrics["accuracy_pruned"] = trained.get("accuracy_pruned")
    files = ctx.deploy_files(twin_id, model, base, spec.seed)
    if max_drop is not None:
        files.int8_options = {"max_drop": max_drop, "held_out": held_out, "held_out_from": held_out_from,
                              "confidence": confidence}
    try:
        made = make(files) if make is not None else {}
        int8_path = files.int8()
        q = files.int8_report()
        metrics.update(files.export_metrics())
        metrics.update(quantize=spec.quantize, fp32_trial_id=twin_id, accuracy_fp32=trained["accuracy"],
                       accuracy=onnx_accuracy(int8_path, ctx.loaders.test(base), threads=torch.get_num_threads()),
                       size_bytes=q.size_bytes, size_kind="int8 onnx", onnx_size_bytes=q.size_bytes,
                       size_bytes_fp32_onnx=q.fp32_size_bytes, calibration_images=q.calibration_images,
                       quantize_seconds=q.seconds)
        metrics.update(made)
        control = files.controlled.get(files.input_size)
        if control is not None:
            metrics.update(control_metrics(control))
            if not control.resolved:
                metrics["warning"] = "; ".join(filter(None, [metrics.get("warning"), unresolved(control)]))
        if max_drop is not None:
            metrics["held_out_from"] = held_out_from
            # which layers stay in float (here, and in NNCF's accuracy control) is this model's own:
            # its timing is not shared with another trial's of the same architecture (nor with one whose
            # drop was measured on other images)
            signature += (f"-drop{max_drop:g}-{twin_id[:8]}" + ("-test" if held_out_from == "test" else "")
                          + (f"-c{confidence:g}" if confidence is not None else ""))
        sig = architecture_signature(model, base.input_size) + signature
        metrics.update(measure_latencies(files, ctx.latency_backends, quantized=True, known=ctx.timing.known(sig),
                                         signature=signature))
        ctx.timing.unify(metrics)
        metrics.update(speed_against_twin(metrics, trained))
        if control is not None and control.float_layers:
            metrics.update(float_layers_cost(files, ctx, metrics))
        kept = ctx.sink.keep_files([int8_path])
        if kept:
            metrics["onnx_path"] = kept[int8_path.name]
    finally:
        files.close()
    return metrics


def control_metrics(report) -> dict:
    """What accuracy control did, for the row (held-out figures: images that neither
    calibrate nor test; held_out_from says which)."""
    return {"int8_max_drop": report.max_drop, "held_out_images": report.held_out_images,
            "accuracy_held_out_fp32": report.accuracy_fp32, "accuracy_held_out_int8_plain": report.accuracy_plain,
            "accuracy_held_out": report.accuracy, "held_out_drop": report.drop / 100,
            "held_out_drop_ci": report.drop_ci / 100, "int8_within_tolerance": report.met,
            **({"int8_confidence": report.confidence, "held_out_drop_bound": report.bound / 100}
               if report.confidence is not None else {}), "equalized_pairs": report.equalized_pairs,
            "bias_corrected_layers": report.bias_corrected, "int8_prepared": report.prepared,
            "float_layers": ", ".join(report.float_layers), "float_layer_count": len(report.float_layers),
            "quantizations": report.quantizations}


def unresolved(report) -> str:
    """The warning of a tolerance finer than its held-out images can measure."""
    said = (f"int8 max_drop {report.max_drop:g}: {report.held_out_images:,} held-out images measure the drop only to "
            f"±{report.drop_ci:.2f} points (95 %), so a larger drop can pass on new images")
    return said + (f"; raise held_out (about {_images_for(report):,} would do)" if report.max_drop > 0 else "")


def _images_for(report) -> int:
    """Held-out images whose 95 % interval would be as narrow as max_drop (it shrinks as 1/sqrt(n))."""
    scale = (report.drop_ci / report.max_drop) ** 2
    return int(-(-report.held_out_images * scale // 100) * 100)     # rounded up to hundreds


def float_layers_cost(files, ctx, metrics: dict) -> dict:
    """What keeping layers in float costs in time: the first backend that runs the
    onnxruntime int8 file times the plain int8 file too (paired with the unpruned model
    where it can), and the ratio is stored."""
    backend = next((b for b in ctx.latency_backends if getattr(b, "runs_int8_onnx", False)), None)
    if backend is None:
        return {}
    label = backend.spec.label
    with files.plain_int8():
        timed = backend.time(files, True)
    if timed is None:
        return {}
    mine = metrics.get(f"latency_{label}_relative")
    plain = timed.extra.get("relative")
    if mine and plain:
        ratio, basis = mine / plain, "paired"
    else:
        ratio, basis = metrics.get(f"latency_{label}_ms", float("nan")) / timed.median_ms, "medians"
    return {"float_layers_cost": ratio, "float_layers_cost_basis": f"{label}, {basis}",
            "plain_int8_ms": timed.median_ms, **({"plain_int8_relative": plain} if plain else {})}
