"""What the trials of one process share: the data, the unpruned models (each built,
adapted and evaluated once), the latency backends, and where artefacts go.

A context is made from the sweep's shared settings, so every process (the local
executor, each Ray worker) derives the same trials from the same inputs.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from ..artifacts import ArtifactStore, exists, read_bytes
from ..config import DatasetConfig, DeployConfig, FinetuneConfig, MeasureConfig, PruneConfig, TargetLayers
from ..data import BatchLoader, DataSplits, make_loader, resolve_normalization
from ..measure.backends import make_backends
from ..deploy.files import TrialArtifacts, resized
from ..errors import EdgepruneError
from ..measure import count_macs, count_params, evaluate
from ..models import create_model
from ..prune import saved
from ..train import finetune
from .plan import TrialSpec, with_old_behaviour
from .shared_timing import SharedTiming


@dataclass
class UnprunedModel:
    """The model every trial of one model spec starts from, built once per process."""
    model: nn.Module
    input_size: int
    mean: tuple
    std: tuple
    accuracy: float
    params: int
    macs: int
    adapted: bool


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise EdgepruneError("device: cuda asked for, but torch sees no CUDA GPU; use device: auto or cpu")
    return torch.device(device)


def adaptation_key(spec: TrialSpec) -> str:
    """Trials that share this key share one adapted unpruned model."""
    return json.dumps(spec.model, sort_keys=True) + f"|seed={spec.seed}"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def latency_specs(measure: MeasureConfig, quantize: list[str]) -> list:
    """The measure section's backends for a sweep; with int8 variants, the first backend
    must run ONNX (an int8 model has no torch latency): onnxruntime is put first if
    the list has no ONNX backend, so that latency_ms compares like with like across
    fp32 and int8 trials."""
    from ..registry import LATENCY_BACKENDS
    specs = measure.latency_backends()
    if "int8" in quantize and specs:
        onnx = [s for s in specs if LATENCY_BACKENDS.get(s.backend).runs_onnx]
        if not onnx:
            specs = [specs[0].model_copy(update={"backend": "onnxruntime", "name": None})] + specs
        else:
            specs = onnx[:1] + [s for s in specs if s is not onnx[0]]
    return specs


class TrialContext:
    def __init__(self, settings: dict, data: DataSplits, run_dir: str | Path,
                 on_step: Optional[Callable[[int, int, float], None]] = None,
                 artifacts: Optional[ArtifactStore] = None, adapted_states: Optional[dict] = None,
                 device: str = "auto", weights_dir: Optional[str] = None, prune_timeout: Optional[float] = None):
        self.settings = settings
        settings = with_old_behaviour(settings)
        self.prune = PruneConfig(**settings["prune"])
        self.prune_timeout = prune_timeout
        self.dataset = DatasetConfig(**settings["dataset"])
        precision = settings.get("precision", "fp32")
        # the precision is part of the trial's identity: it decides, not the machine
        self.finetune = FinetuneConfig(**settings["finetune"]).model_copy(
            update={"amp": "bf16" if precision == "bf16" else "off"})
        self.measure = MeasureConfig(**settings["measure"])
        self.target = TargetLayers(**settings["target"])
        self.round_to = settings.get("round_to")
        self.deploy = DeployConfig(**settings.get("deploy", {}))
        self.quantize = settings.get("quantize", ["none"])
        self.device = resolve_device(device)
        # the dataset moves to the device once (a GPU holds CIFAR whole); models visit it
        self.host_data = data                  # on the CPU: exports and quantization read this
        self.data = data.to(self.device) if self.device.type != "cpu" else data
        self.run_dir, self.on_step, self.weights_dir = Path(run_dir), on_step, weights_dir
        self.artifacts = artifacts             # set when trial models are to be saved
        # adapted state dicts computed elsewhere (a Ray task), by adaptation key
        self.adapted_states = adapted_states if adapted_states is not None else {}
        self._unpruned: dict[str, UnprunedModel] = {}
        self._teachers: dict[int, nn.Module] = {}
        self._references: dict[int, TrialArtifacts] = {}
        self.latency_backends = make_backends(latency_specs(self.measure, self.quantize)) \
            if self.measure.latency else []
        self.timing = SharedTiming()          # one latency per architecture and backend (shared_timing)

    # -- loaders ---------------------------------------------------------------
    def train_loader(self, base: UnprunedModel, seed: int, augment: Optional[bool] = None) -> BatchLoader:
        return make_loader(self.data.train, self.finetune.batch_size, base.mean, base.std, shuffle=True,
                           augment=self.dataset.augment if augment is None else augment,
                           image_size=base.input_size, seed=seed, channels_last=self.finetune.channels_last)

    def test_loader(self, base: UnprunedModel) -> BatchLoader:
        return make_loader(self.data.test, self.measure.eval_batch_size, base.mean, base.std,
                           image_size=base.input_size, channels_last=self.finetune.channels_last)

    def on_device(self, model: nn.Module) -> nn.Module:
        return model.to(self.device) if self.device.type != "cpu" else model

    # -- the unpruned model ------------------------------------------------------
    def unpruned(self, spec: TrialSpec) -> UnprunedModel:
        key = json.dumps(spec.model, sort_keys=True) + f"|{spec.seed}"
        if key not in self._unpruned:
            self._unpruned[key] = self._build_unpruned(spec)
        return self._unpruned[key]

    @staticmethod
    def adapts(finetune: FinetuneConfig) -> bool:
        """The rule: a replaced head is trained once, before pruning, when the order asks for it."""
        return finetune.order == "adapt_then_prune" and finetune.adapt_epochs > 0

    @staticmethod
    def may_need_adaptation(spec: TrialSpec, finetune: FinetuneConfig) -> bool:
        """Before building: weights that bring their own head (pretrained, a checkpoint)
        may get a new one to adapt; random weights are built with the right head."""
        return bool(spec.model["pretrained"] or spec.model.get("checkpoint")) and TrialContext.adapts(finetune)

    def _build_unpruned(self, spec: TrialSpec) -> UnprunedModel:
        m = spec.model
        torch.manual_seed(spec.seed)  # random weights and heads are the same in every process
        model = create_model(m["name"], self.data.num_classes, pretrained=m["pretrained"],
                             checkpoint=m.get("checkpoint"), weights_dir=self.weights_dir)
        meta = model.edgeprune_meta
        input_size = max(self.dataset.image_size or self.data.train.image_size, meta["min_input_size"])
        mean, std = resolve_normalization(self.dataset.normalization, meta, self.data.train)
        base = UnprunedModel(model, input_size, mean, std, float("nan"), 0, 0, adapted=False)
        if meta["head_replaced"] and self.adapts(self.finetune):
            self._adapt(base, spec)
        model.eval()
        base.accuracy = evaluate(self.on_device(model), self.test_loader(base))
        model.to("cpu")
        base.params = count_params(model)
        base.macs = count_macs(model, input_size)
        return base

    def _adapt(self, base: UnprunedModel, spec: TrialSpec) -> None:
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

    def adapted_state(self, spec: TrialSpec) -> Optional[dict]:
        """The adapted state dict of the spec's model, or None when it needs none."""
        base = self.unpruned(spec)
        return {k: v.clone() for k, v in base.model.state_dict().items()} if base.adapted else None

    def teacher(self, base: UnprunedModel) -> nn.Module:
        """The unpruned model as a distillation teacher, on the device (a copy when
        that is a GPU, made once per unpruned model)."""
        if self.device.type == "cpu":
            return base.model
        key = id(base)
        if key not in self._teachers:
            self._teachers[key] = copy.deepcopy(base.model).to(self.device).eval()
        return self._teachers[key]

    # -- deployment files ----------------------------------------------------------
    def deploy_files(self, stem: str, model: nn.Module, base: UnprunedModel, seed: int) -> TrialArtifacts:
        """On-demand, verified ONNX / int8 files of a trial's model."""
        test = make_loader(self.host_data.test, self.deploy.parity_images, base.mean, base.std,
                           image_size=base.input_size)
        check = next(iter(test))[0]

        def calibration(size: int):
            return make_loader(self.host_data.train, 64, base.mean, base.std, shuffle=True, augment=False,
                               image_size=size, seed=seed)

        files = TrialArtifacts(model, base.input_size, self.deploy, stem,
                               check_images=lambda size: resized(check, size), calibration=calibration,
                               test_batches=make_loader(self.host_data.test, self.measure.eval_batch_size, base.mean,
                                                        base.std, image_size=base.input_size)
                               if self.measure.backend_accuracy else None)
        if self.measure.latency_reference:
            if id(base) not in self._references:     # made once per unpruned model, kept for the process
                unpruned = copy.deepcopy(base.model).to("cpu").eval()
                self._references[id(base)] = TrialArtifacts(
                    unpruned, base.input_size, self.deploy, "unpruned", check_images=lambda size: resized(check, size),
                    calibration=calibration)
            files.reference = self._references[id(base)]
        return files

    @property
    def keeps_onnx(self) -> bool:
        return self.deploy.save_onnx or self.artifacts is not None

    def keep_files(self, files) -> dict:
        """Keep ONNX files (deploy.save_onnx, or when trial models are saved) under onnx/."""
        if not self.keeps_onnx:
            return {}
        store = self.artifacts or ArtifactStore(self.run_dir)
        return {f.name: store.put_bytes(f"onnx/{f.name}", f.read_bytes()) for f in files}

    # -- saved models ------------------------------------------------------------
    def model_bytes(self, spec: TrialSpec, model: nn.Module, base: UnprunedModel) -> bytes:
        """The trial's model in the format that loads without running code."""
        return saved.dumps(model, getattr(model, "edgeprune_history", []), spec.model, base.input_size)

    def save_model(self, spec: TrialSpec, model: nn.Module, base: UnprunedModel) -> str:
        """Write the trial's model (RUN/models/ID.pt, or under `storage:`); returns where."""
        store = self.artifacts or ArtifactStore(self.run_dir)
        return store.put_bytes(f"models/{spec.trial_id}.pt", self.model_bytes(spec, model, base))

    @staticmethod
    def load_saved(uri: Optional[str]) -> Optional[nn.Module]:
        """A model `save_model` wrote, or None when there is none, or it is not in the
        code-free format (then the trial is run again rather than the file unpickled)."""
        if not uri or not exists(uri):
            return None
        try:
            return saved.loads(read_bytes(uri), source=uri)
        except EdgepruneError:
            return None
