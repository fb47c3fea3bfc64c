"""The metrics schema: every scalar a trial stores, with its unit, its meaning and
how it is written. Tables (`show`, `recommend`), the CSV, the HTML report and
`recommend`'s budgets all read their labels and formats from here, so a label
says what was measured.

Formats ("kind"): fraction (0.913 -> 91.30 %), points (an accuracy difference in
points), count, mega (millions), bytes, ms, seconds, int, ratio (×1.08), relative (+4.2 %),
flag (yes / no), text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional


@dataclass(frozen=True)
class Metric:
    key: str
    header: str                 # short column header (units in it)
    kind: str                   # how values are written (see the module docstring)
    description: str            # what was measured, in words
    better: Optional[str] = None    # "higher" / "lower": the direction of a good value


METRICS: dict[str, Metric] = {m.key: m for m in [
    Metric("accuracy", "acc %", "fraction", "top-1 test accuracy after fine-tuning (int8 variants: measured in "
           "onnxruntime)", "higher"),
    Metric("accuracy_pruned", "acc pruned %", "fraction", "top-1 test accuracy right after pruning, before "
           "fine-tuning", "higher"),
    Metric("accuracy_recalibrated", "acc recal %", "fraction", "top-1 test accuracy right after pruning and "
           "BatchNorm recalibration (prune.recalibrate_bn), before fine-tuning", "higher"),
    Metric("accuracy_reconstructed", "acc rebuilt %", "fraction", "top-1 test accuracy after pruning and "
           "rebuilding the pruned layers by least squares from unlabeled images (prune.reconstruct), before "
           "fine-tuning", "higher"),
    Metric("logit_error_pruned", "logit err pruned", "float", "|pruned - unpruned| / |unpruned| of the logits on "
           "calibration images, right after pruning", "lower"),
    Metric("logit_error_reconstructed", "logit err rebuilt", "float", "the same relative logit error after "
           "rebuilding", "lower"),
    Metric("reconstruct_images", "rebuild imgs", "int", "unlabeled images the layers were rebuilt from"),
    Metric("reconstruct_layers", "rebuilt layers", "int", "conv / linear layers re-solved"),
    Metric("reconstruct_peak_mb", "rebuild MB", "float", "peak memory while rebuilding (process RSS on a CPU)"),
    Metric("base_accuracy", "acc orig %", "fraction", "top-1 test accuracy of the unpruned (head-adapted) model "
           "before fine-tuning", "higher"),
    Metric("baseline_accuracy", "acc base %", "fraction", "accuracy of the same model's unpruned baseline trial "
           "(same fine-tuning)", "higher"),
    Metric("accuracy_drop", "Δ pt", "points", "baseline accuracy minus this trial's accuracy", "lower"),
    Metric("params", "params", "count", "parameters of the pruned model", "lower"),
    Metric("params_base", "params orig", "count", "parameters of the unpruned model"),
    Metric("param_reduction", "params −%", "fraction", "fraction of the unpruned model's parameters removed",
           "higher"),
    Metric("macs", "MACs", "mega", "multiply-accumulates per image at the trial's input size (PyTorch's FLOP "
           "counter / 2)", "lower"),
    Metric("macs_base", "MACs orig", "mega", "MACs of the unpruned model"),
    Metric("mac_reduction", "MACs −%", "fraction", "fraction of the unpruned model's MACs removed", "higher"),
    Metric("size_bytes", "size", "bytes", "bytes of the model file: the saved PyTorch module (torch.save) for "
           "a trained trial, the int8 ONNX file for an int8 variant", "lower"),
    Metric("onnx_size_bytes", "ONNX size", "bytes", "bytes of the trial's ONNX file (fp32, or int8 for an int8 "
           "variant)", "lower"),
    Metric("latency_ms", "lat ms", "ms", "median latency on the first latency backend (see latency_backend, "
           "latency_threads, latency_batch_size)", "lower"),
    Metric("latency_p90_ms", "p90 ms", "ms", "90th-percentile latency on the first latency backend", "lower"),
    Metric("latency_ci_rel", "lat ±%", "fraction", "half-width of the 95 % confidence interval of the median "
           "latency, relative to it (adaptive repeats run until it is within measure.latency_ci)"),
    Metric("latency_relative", "lat ×orig", "float", "latency on the first latency backend divided by the "
           "unpruned model's, each call paired with one of it (ABBA), as the ratio of their 10th-percentile "
           "times (machine load cancels; measure.latency_reference)", "lower"),
    Metric("held_out_drop", "held-out Δ pt", "points", "int8 with max_drop: the int8 file's accuracy drop "
           "against its fp32 twin on held-out images (neither calibration images nor the test set; "
           "held_out_from says which), after accuracy control", "lower"),
    Metric("held_out_drop_ci", "held-out ±pt", "points", "int8 with max_drop: the 95 % half-width of "
           "held_out_drop (fp32 and int8 scored on the same images); a max_drop under it is beyond what the "
           "held-out images can measure, and the row warns"),
    Metric("held_out_drop_bound", "held-out bound pt", "points", "int8 with max_drop and confidence: the upper "
           "end of held_out_drop's one-sided interval at that confidence (int8_confidence), what was held within "
           "max_drop", "lower"),
    Metric("held_out_from", "held-out from", "text", "int8 with max_drop: where the held-out images came from "
           "(train: training images after the calibration images; test: the test images dataset.test_fraction "
           "leaves out)"),
    Metric("float_layer_count", "float layers", "int", "int8 with max_drop: layers kept in float so that the "
           "drop holds (their names: float_layers)"),
    Metric("float_layers_cost", "float cost ×", "ratio", "int8 with max_drop: latency of the mixed-precision file "
           "over the plain int8 file's, on the first backend that runs onnxruntime's int8 (paired where it can)",
           "lower"),
    Metric("latency_target_ms", "target ms", "ms", "the latency a `rates: [{latency_ms: T}]` trial aimed for"),
    Metric("latency_search_ms", "search ms", "ms", "the latency the target search measured for the model it "
           "chose (timed paired with the unpruned model where the backend can: its relative figure on the scale "
           "of the search's first timing)"),
    Metric("latency_reached_ms", "reached ms", "ms", "a fresh timing of that model after the search"),
    Metric("latency_threads", "threads", "int", "threads the first latency backend ran with"),
    Metric("cpu_int8", "CPU int8", "text", "int8 dot-product instructions of the CPU latency was measured on "
           "(AVX512-VNNI, AVX-VNNI, AMX-INT8, Arm-DOTPROD, Arm-I8MM; none: int8 kernels widen to 16 bits and "
           "rarely beat fp32); a device's own is latency_<backend>_cpu_int8"),
    Metric("int8_vs_fp32", "int8 ×fp32", "ratio", "an int8 variant's latency over its fp32 twin's on the first "
           "latency backend (each timed paired with the unpruned model where both were): above 1, int8 is "
           "slower; latency_<backend>_vs_fp32 for each backend", "lower"),
    Metric("int8_slower", "int8 slower", "flag", "the int8 variant runs slower than its fp32 twin on the first "
           "latency backend (int8_vs_fp32 > 1); int8_slower_on names every backend where it does"),
    Metric("latency_batch_size", "batch", "int", "batch size of the latency measurement"),
    Metric("sparsity", "sparsity %", "fraction", "fraction of the targeted weights set to zero (unstructured "
           "pruning)"),
    Metric("channel_ratio", "channels −%", "fraction", "fraction of the targeted layers' output channels removed"),
    Metric("layer_rate", "layer rate", "float", "per-layer rate applied (searched for params/macs targets)"),
    Metric("input_size", "input px", "int", "side of the square input images"),
    Metric("task_weights", "task weights", "flag", "the unpruned model's weights (published or a checkpoint) came "
           "with a head for this task's classes: no layer started random, so its accuracy bounds what fine-tuning "
           "a cut of it can reach"),
    Metric("prune_seconds", "prune s", "seconds", "wall time of the pruning step"),
    Metric("recalibrate_seconds", "recal s", "seconds", "wall time of the BatchNorm recalibration"),
    Metric("reconstruct_seconds", "rebuild s", "seconds", "wall time of rebuilding the pruned layers"),
    Metric("finetune_seconds", "fine-tune s", "seconds", "wall time of fine-tuning"),
    Metric("finetune_steps", "steps", "int", "optimiser steps of this trial's fine-tuning"),
    Metric("finetune_epochs", "epochs", "float", "epochs of this trial's fine-tuning"),
    Metric("chain_steps", "total steps", "int", "fine-tune steps from the unpruned model to this one: its own, "
           "plus its parents' in a cascade or a refinement"),
    Metric("trial_seconds", "trial s", "seconds", "wall time of the whole trial"),
    # allocated trials (allocation: sensitivity | latency | global | a plugin's)
    Metric("allocation_predicted_cost", "alloc cost", "float", "the allocation's predicted cost, in its budget's "
           "unit (MACs, parameters, or latency: ms or relative to the unpruned model)"),
    Metric("allocation_budget", "alloc budget", "float", "the budget the allocation was solved for, in that unit"),
    Metric("allocation_predicted_loss", "pred loss", "float", "the loss the sensitivity map predicts for the chosen "
           "widths (sum over groups of each group's added loss)", "lower"),
    Metric("allocation_seconds", "alloc s", "seconds", "wall time of choosing the widths (searching the budget "
           "for a latency target included)"),
    Metric("allocation_probes", "probes", "int", "networks timed whole while searching a latency target's budget"),
    Metric("latency_predicted_ms", "pred ms", "ms", "the latency model's prediction for the allocated network, on "
           "the first latency backend"),
    Metric("latency_allocated_ms", "alloc ms", "ms", "the allocated network timed whole right after allocating "
           "(first latency backend)"),
    Metric("latency_prediction_error", "pred err", "relative", "predicted / measured latency - 1 of the "
           "allocated network", "lower"),
    Metric("latency_target_ms", "target ms", "ms", "a latency_ms target, as given"),
    Metric("latency_search_ms", "search ms", "ms", "what the latency search measured for the network it chose"),
    Metric("latency_reached_ms", "reached ms", "ms", "a fresh timing of that network (the two differ by noise)"),
    Metric("latency_scale", "ms from", "text", "what a latency_ms target was a share of: 'run' (the run's timing of "
           "the unpruned model, its baseline trial's) or 'trial' (the trial's own first timing of it)"),
    Metric("map_seconds", "map s", "seconds", "wall time of the run's sensitivity map for this model and "
           "algorithm (measured once, shared by its trials)"),
    Metric("map_calls", "map calls", "int", "pruned copies the map evaluated (groups x widths)"),
    Metric("map_images", "map imgs", "int", "calibration images of the map"),
    Metric("map_measured", "map here", "flag", "whether this trial measured the map (else it read the run's)"),
]}

# the columns of `show` / recommend in order of importance: the first ones always fit
SHOW_ORDER = ["accuracy", "params", "latency_ms", "param_reduction", "macs", "mac_reduction", "accuracy_pruned",
              "accuracy_recalibrated", "accuracy_reconstructed", "size_bytes", "int8_vs_fp32", "latency_p90_ms",
              "sparsity", "finetune_seconds"]


def metric(key: str) -> Metric:
    return METRICS.get(key) or Metric(key, key, "float", key)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v == ""


def short_number(v: float) -> str:
    """5.47M, 43.8k, 912: a count in at most 5 characters."""
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            x = v / div
            return f"{x:.3g}{suffix}" if abs(x) < 100 else f"{x:.0f}{suffix}"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"


def short_bytes(v: float) -> str:
    """43.8 MB, 512 kB: SI units (powers of 1000, as file managers show), the one unit
    system edgeprune writes sizes in (tables, figures, the report, messages)."""
    for div, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(v) >= div:
            x = v / div
            return f"{x:.3g}{suffix}" if abs(x) < 100 else f"{x:.0f}{suffix}"
    return f"{v:.0f}B"


def fmt(key: str, v: Any, short: bool = True, empty: str = "") -> str:
    """One value as tables write it (`short`: abbreviated counts, for terminals)."""
    if _missing(v):
        return empty
    kind = metric(key).kind
    if kind == "flag" and isinstance(v, (bool, int, float)):
        return "yes" if v else "no"
    if isinstance(v, bool) or kind == "text" or not isinstance(v, (int, float)):
        return str(v)
    if kind == "fraction":
        return f"{100 * v:.2f}" if not short else f"{100 * v:.1f}"
    if kind == "points":
        return f"{-100 * v + 0.0:+.2f}"          # shown as the change: -1.20 is a drop of 1.2 points
    if kind == "count":
        return short_number(v) if short else f"{v:,.0f}"
    if kind == "mega":
        return short_number(v) if short else f"{v / 1e6:,.2f} M"
    if kind == "bytes":
        return short_bytes(v) if short else f"{v:,.0f} B"
    if kind == "ms":
        return f"{v:.2f}" if short else f"{v:.3f}"
    if kind == "seconds":
        return f"{v:.1f}"
    if kind == "int":
        return f"{v:.0f}"
    if kind == "ratio":
        return f"×{v:.2f}"
    if kind == "relative":
        return f"{100 * v:+.1f} %"
    if kind == "flag":
        return "yes" if v else "no"
    return f"{v:g}"


def latency_label(row: Mapping) -> str:
    """What latency_ms of this trial is: 'onnxruntime, 1 thread, batch 1'."""
    backend = row.get("latency_backend")
    if _missing(backend):
        return "not measured"
    threads, batch = row.get("latency_threads"), row.get("latency_batch_size")
    parts = [str(backend)]
    if not _missing(threads):
        parts.append(f"{threads:.0f} thread" + ("s" if threads != 1 else ""))
    parts.append(f"batch {1 if _missing(batch) else int(batch)}")
    device = row.get(f"latency_{backend}_device")
    if isinstance(device, str) and device:
        parts.append(device)
    return ", ".join(parts)
