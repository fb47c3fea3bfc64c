"""One trial: (adapted) base model -> prune -> fine-tune -> measure."""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from ..artifacts import ArtifactStore
from ..config import DatasetConfig, DeployConfig, FinetuneConfig, MeasureConfig, TargetLayers
from ..data import BatchLoader, DataSplits, make_loader, resolve_normalization
from ..errors import EdgepruneError
from ..measure import count_macs, count_params, evaluate, model_size_bytes
from ..models import create_model
from ..prune import ALGORITHMS, prune_model
from ..train import finetune
from .plan import TrialSpec

CALIBRATION_BATCHES = 4


@dataclass
class BaseModel:
    """The unpruned model every trial of one model starts from, built once."""
    model: nn.Module
    input_size: int
    mean: tuple
    std: tuple
    accuracy: float
    params: int
    macs: int
    adapted: bool


class TrialContext:
    """What trials share within one process: the data, the base models, settings."""

    def __init__(self, settings: dict, data: DataSplits, run_dir: str | Path,
                 on_step: Optional[Callable[[int, int, float], None]] = None,
                 artifacts: Optional[ArtifactStore] = None, adapted_states: Optional[dict] = None,
                 device: str = "auto"):
        self.dataset = DatasetConfig(**settings["dataset"])
        self.finetune = FinetuneConfig(**settings["finetune"])
        self.measure = MeasureConfig(**settings["measure"])
        self.target = TargetLayers(**settings["target"])
        self.round_to = settings.get("round_to")
        self.device = resolve_device(device)
        # the dataset moves to the device once (a GPU holds CIFAR whole); models visit it
        self.host_data = data                  # on the CPU: exports and quantization read this
        self.data = data.to(self.device) if self.device.type != "cpu" else data
        self.run_dir, self.on_step = Path(run_dir), on_step
        self._teachers: dict[int, nn.Module] = {}
        self.artifacts = artifacts            # set when trial models are to be saved
        # adapted state dicts computed elsewhere (a Ray task), by model identity
        self.adapted_states = adapted_states if adapted_states is not None else {}
        self._bases: dict[str, BaseModel] = {}
        self.deploy = DeployConfig(**settings.get("deploy", {}))
        self.quantize = settings.get("quantize", ["none"])
        from ..deploy.pipeline import sweep_backends
        self.latency_backends = sweep_backends(self.measure, self.quantize) if self.measure.latency else []
        self._agent_clients: dict = {}
        self._finished: dict[str, tuple[nn.Module, dict]] = {}   # the last fp32 trial, for its int8 twin

    # -- loaders ---------------------------------------------------------------
    def train_loader(self, base: BaseModel, seed: int, augment: Optional[bool] = None) -> BatchLoader:
        return make_loader(self.data.train, self.finetune.batch_size, base.mean, base.std, shuffle=True,
                           augment=self.dataset.augment if augment is None else augment,
                           image_size=base.input_size, seed=seed, channels_last=self.finetune.channels_last)

    def test_loader(self, base: BaseModel) -> BatchLoader:
        return make_loader(self.data.test, self.measure.eval_batch_size, base.mean, base.std,
                           image_size=base.input_size, channels_last=self.finetune.channels_last)

    # -- deployment ------------------------------------------------------------
    def deploy_files(self, stem: str, model: nn.Module, base: BaseModel, seed: int):
        """On-demand, verified ONNX / int8 files of a trial's model (edgeprune.deploy.pipeline)."""
        from ..deploy.pipeline import TrialArtifacts, resized
        test = make_loader(self.host_data.test, self.deploy.parity_images, base.mean, base.std,
                           image_size=base.input_size)
        check = next(iter(test))[0]

        def calibration(size: int):
            return make_loader(self.host_data.train, 64, base.mean, base.std, shuffle=True, augment=False,
                               image_size=size, seed=seed)

        return TrialArtifacts(model, base.input_size, self.deploy, stem,
                              check_images=lambda size: resized(check, size), calibration=calibration)

    def keep_deploy_files(self, files) -> dict:
        """Keep ONNX files (deploy.save_onnx, or when trial models are saved) under onnx/."""
        if not (self.deploy.save_onnx or self.artifacts is not None):
            return {}
        kept = {}
        for f in files:
            if self.artifacts is not None:
                kept[f.name] = self.artifacts.put_bytes(f"onnx/{f.name}", f.read_bytes())
            else:
                dest = self.run_dir / "onnx" / f.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(f.read_bytes())
                kept[f.name] = str(dest)
        return kept

    def remember(self, trial_id: str, model: nn.Module, metrics: dict) -> None:
        self._finished = {trial_id: (model, metrics)} if "int8" in self.quantize else {}

    # -- base models -----------------------------------------------------------
    def base(self, spec: TrialSpec) -> BaseModel:
        key = json.dumps(spec.model, sort_keys=True) + f"|{spec.seed}"
        if key not in self._bases:
            self._bases[key] = self._build_base(spec)
        return self._bases[key]

    def _build_base(self, spec: TrialSpec) -> BaseModel:
        m = spec.model
        torch.manual_seed(spec.seed)  # random weights and heads are the same in every process
        model = create_model(m["name"], self.data.num_classes, pretrained=m["pretrained"],
                             checkpoint=m.get("checkpoint"))
        meta = model.edgeprune_meta
        input_size = max(self.dataset.image_size or self.data.train.image_size, meta["min_input_size"])
        mean, std = resolve_normalization(self.dataset.normalization, meta, self.data.train)
        base = BaseModel(model, input_size, mean, std, float("nan"), 0, 0, adapted=False)
        if (meta["head_replaced"] and self.finetune.order == "adapt_then_prune"
                and self.finetune.adapt_epochs > 0):
            self._adapt(base, spec)
        model.eval()
        base.accuracy = evaluate(self.on_device(model), self.test_loader(base))
        model.to("cpu")
        base.params = count_params(model)
        base.macs = count_macs(model, input_size)
        return base

    def _adapt(self, base: BaseModel, spec: TrialSpec) -> None:
        """Fine-tune the new head (and the rest) once per model; cached on disk so a
        resumed sweep and every trial of this model reuse it."""
        name = spec.model_label.replace("/", "_").replace(":", "_")
        ident = adaptation_key(spec)
        cache = self.run_dir / "adapted" / f"{name}-{_short_hash(ident)}-seed{spec.seed}.pt"
        if ident in self.adapted_states:
            base.model.load_state_dict(self.adapted_states[ident])
        elif cache.is_file():
            base.model.load_state_dict(torch.load(cache, map_location="cpu", weights_only=True))
        else:
            finetune(self.on_device(base.model), self.train_loader(base, spec.seed), self.finetune,
                     epochs=self.finetune.adapt_epochs, seed=spec.seed, on_step=self.on_step)
            base.model.to("cpu", memory_format=torch.contiguous_format)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            torch.save(base.model.state_dict(), tmp)
            tmp.replace(cache)  # atomic: a crash never leaves a half-written cache
        base.adapted = True


    def on_device(self, model: nn.Module) -> nn.Module:
        return model.to(self.device) if self.device.type != "cpu" else model

    def teacher(self, base: BaseModel) -> nn.Module:
        """The unpruned model as a distillation teacher, on the device (a copy when
        that is a GPU, made once per base model)."""
        if self.device.type == "cpu":
            return base.model
        key = id(base)
        if key not in self._teachers:
            self._teachers[key] = copy.deepcopy(base.model).to(self.device).eval()
        return self._teachers[key]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise EdgepruneError("device: cuda asked for, but torch sees no CUDA GPU; use device: auto or cpu")
    return torch.device(device)


def adaptation_key(spec: TrialSpec) -> str:
    """Trials that share this key share one adapted base model."""
    return json.dumps(spec.model, sort_keys=True) + f"|seed={spec.seed}"


def adapt_model(spec: TrialSpec, ctx: "TrialContext") -> Optional[dict]:
    """The adapted state dict of the spec's model, or None when it needs none."""
    base = ctx.base(spec)
    return {k: v.clone() for k, v in base.model.state_dict().items()} if base.adapted else None


def _short_hash(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_trial(spec: TrialSpec, ctx: TrialContext) -> dict:
    """Run one trial and return its metrics (raises on failure)."""
    return execute_trial(spec, ctx)[1]


def execute_trial(spec: TrialSpec, ctx: TrialContext) -> tuple[nn.Module, dict]:
    """Run one trial; returns the fine-tuned model and its metrics (an int8 trial
    returns the fp32 model it quantized)."""
    if spec.is_quantized:
        return _execute_quantized(spec, ctx)
    start = time.perf_counter()
    base = ctx.base(spec)
    test = ctx.test_loader(base)
    metrics: dict = {"input_size": base.input_size, "base_accuracy": base.accuracy,
                     "normalization": {"mean": list(base.mean), "std": list(base.std)},
                     "params_base": base.params, "macs_base": base.macs, "adapted": base.adapted}
    if spec.is_baseline:
        model = ctx.on_device(copy.deepcopy(base.model))
        metrics.update(accuracy_pruned=base.accuracy, prune_seconds=0.0, channel_ratio=0.0, layer_rate=0.0)
    else:
        algo = ALGORITHMS.get(spec.algorithm)
        calibration = None
        if algo.needs_data:
            loader = ctx.train_loader(base, spec.seed, augment=False)
            calibration = [b for _, b in zip(range(CALIBRATION_BATCHES), loader)]
        result = prune_model(base.model, spec.algorithm, spec.rate, base.input_size, kind=spec.target_kind,
                             layers=ctx.target.layers, include=ctx.target.include, exclude=ctx.target.exclude,
                             round_to=ctx.round_to, seed=spec.seed, calibration=calibration)
        model = ctx.on_device(result.model)
        metrics.update(accuracy_pruned=evaluate(model, test), prune_seconds=result.seconds,
                       channel_ratio=result.channel_ratio, layer_rate=result.layer_rate,
                       structured=result.structured,
                       layer_channels={n: list(c) for n, c in result.layer_channels.items()})
        if result.sparsity is not None:
            metrics["sparsity"] = result.sparsity
    teacher = None
    if ctx.finetune.distill is not None and not spec.is_baseline:   # a baseline would distil itself
        if base.model.edgeprune_meta.get("head_replaced") and not base.adapted:
            raise EdgepruneError("finetune.distill: the teacher's new head is untrained; use finetune.order "
                                 "adapt_then_prune (with adapt_epochs > 0) to distil")
        teacher = ctx.teacher(base)
    ft = finetune(model, ctx.train_loader(base, spec.seed), ctx.finetune, seed=spec.seed, on_step=ctx.on_step,
                  teacher=teacher)
    metrics.update(accuracy=evaluate(model, test), finetune_seconds=ft.seconds, finetune_steps=ft.steps,
                   finetune_epochs=ft.epochs, finetune_losses=ft.losses, distilled=ft.distilled, quantize="none")
    model.to("cpu", memory_format=torch.contiguous_format).eval()   # measured where it will run: a CPU
    params, macs = count_params(model), count_macs(model, base.input_size)
    metrics.update(params=params, param_reduction=1 - params / base.params, macs=macs,
                   mac_reduction=1 - macs / base.macs, size_bytes=model_size_bytes(model))
    from ..deploy.pipeline import measure_latencies
    files = ctx.deploy_files(spec.trial_id, model, base, spec.seed)
    try:
        metrics.update(measure_latencies(model, files, ctx.latency_backends, base.input_size,
                                         clients=ctx._agent_clients))
        if ctx.deploy.save_onnx or ctx.artifacts is not None:
            files.onnx()
        metrics.update(_export_metrics(files))
        kept = ctx.keep_deploy_files(files.files())
        if files.exports.get(base.input_size) and kept:
            metrics["onnx_path"] = kept[files.exports[base.input_size].path.name]
    finally:
        files.close()
    if ctx.artifacts is not None:
        metrics["model_path"] = ctx.artifacts.save_model(f"models/{spec.trial_id}.pt", model)
    metrics["trial_seconds"] = time.perf_counter() - start
    ctx.remember(spec.trial_id, model, metrics)
    return model, metrics


def _export_metrics(files) -> dict:
    """What the trial's fp32 ONNX export measured, when it made one."""
    report = files.exports.get(files.input_size)
    if report is None:
        return {}
    return {"onnx_size_bytes": report.size_bytes, "onnx_max_abs_diff": report.max_abs_diff,
            "onnx_top1_agreement": report.top1_agreement, "onnx_export_seconds": report.seconds}


# fp32 metrics an int8 trial does not inherit: it measures its own
_NOT_INHERITED = ("latency_", "onnx_", "trial_seconds", "size_bytes", "accuracy")  # model_path: the twin's


def _execute_quantized(spec: TrialSpec, ctx: TrialContext) -> tuple[nn.Module, dict]:
    """An int8 trial: its fp32 twin's fine-tuned model (reused when the twin just ran
    in this process, else trained again, seeded) quantized by onnxruntime static PTQ;
    accuracy measured in onnxruntime on the test set, size of the int8 file, latency
    on every backend that runs ONNX."""
    from ..deploy.pipeline import measure_latencies
    from ..deploy.quantize import onnx_accuracy
    start = time.perf_counter()
    twin = spec.fp32_twin()
    model, fp32 = ctx._finished.get(twin.trial_id) or execute_trial(twin, ctx)
    base = ctx.base(spec)
    metrics = {k: v for k, v in fp32.items() if not k.startswith(_NOT_INHERITED)}
    metrics["accuracy_pruned"] = fp32.get("accuracy_pruned")
    files = ctx.deploy_files(twin.trial_id, model, base, spec.seed)
    try:
        int8_path = files.int8()
        q = files.quantized[base.input_size]
        metrics.update(_export_metrics(files))
        metrics.update(quantize=spec.quantize, fp32_trial_id=twin.trial_id, accuracy_fp32=fp32["accuracy"],
                       accuracy=onnx_accuracy(int8_path, ctx.test_loader(base), threads=torch.get_num_threads()),
                       size_bytes=q.size_bytes, onnx_size_bytes=q.size_bytes, size_bytes_fp32_onnx=q.fp32_size_bytes,
                       calibration_images=q.calibration_images, quantize_seconds=q.seconds)
        metrics.update(measure_latencies(model, files, ctx.latency_backends, base.input_size, quantized=True,
                                         clients=ctx._agent_clients))
        kept = ctx.keep_deploy_files([int8_path])
        if kept:
            metrics["onnx_path"] = kept[int8_path.name]
    finally:
        files.close()
    metrics["trial_seconds"] = time.perf_counter() - start
    return model, metrics
