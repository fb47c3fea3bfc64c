"""The model every trial of one model spec starts from: built once per process, its
new head adapted once per run (cached in RUN/adapted/, and shared by Ray with every
worker), evaluated and counted once."""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn

from ..data import resolve_normalization
from ..errors import EdgepruneError
from ..measure import count_macs, count_params, evaluate
from ..models import create_model
from ..run import RunFolder
from ..train import finetune


@dataclass
class UnprunedModel:
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


def model_key(spec) -> str:
    """Trials that share this key share one unpruned (and adapted) model."""
    return json.dumps(spec.model, sort_keys=True) + f"|seed={spec.seed}"


def adapts(finetune_cfg) -> bool:
    """The rule: a replaced head is trained once, before pruning, when the order asks for it."""
    return finetune_cfg.order == "adapt_then_prune" and finetune_cfg.adapt_epochs > 0


def may_need_adaptation(spec, finetune_cfg) -> bool:
    """Before building: weights that bring their own head (pretrained, a checkpoint)
    may get a new one to adapt; random weights are built with the right head."""
    return bool(spec.model["pretrained"] or spec.model.get("checkpoint")) and adapts(finetune_cfg)


class UnprunedModels:
    def __init__(self, settings, loaders, device: torch.device, run: RunFolder, weights_dir: Optional[str] = None):
        self.settings, self.loaders, self.device, self.run, self.weights_dir = settings, loaders, device, run, weights_dir
        # adapted state dicts computed elsewhere (a Ray task), by model key
        self.adapted_states: dict[str, dict] = {}
        self._built: dict[str, UnprunedModel] = {}
        self._teachers: dict[int, nn.Module] = {}

    def get(self, spec, on_step: Optional[Callable] = None) -> UnprunedModel:
        key = model_key(spec)
        if key not in self._built:
            self._built[key] = self._build(spec, on_step)
        return self._built[key]

    def on_device(self, model: nn.Module) -> nn.Module:
        return model.to(self.device) if self.device.type != "cpu" else model

    def _build(self, spec, on_step) -> UnprunedModel:
        m, data, s = spec.model, self.loaders.data, self.settings
        torch.manual_seed(spec.seed)  # random weights and heads are the same in every process
        model = create_model(m["name"], data.num_classes, pretrained=m["pretrained"], checkpoint=m.get("checkpoint"),
                             weights_dir=self.weights_dir)
        meta = model.edgeprune_meta
        input_size = max(s.dataset.image_size or data.train.image_size, meta["min_input_size"])
        mean, std = resolve_normalization(s.dataset.normalization, meta, data.train)
        base = UnprunedModel(model, input_size, mean, std, float("nan"), 0, 0, adapted=False)
        if meta["head_replaced"] and adapts(s.finetune):
            self._adapt(base, spec, on_step)
        model.eval()
        base.accuracy = evaluate(self.on_device(model), self.loaders.test(base))
        model.to("cpu")
        base.params = count_params(model)
        base.macs = count_macs(model, input_size)
        return base

    def _adapt(self, base: UnprunedModel, spec, on_step) -> None:
        """Fine-tune the new head (and the rest) once per model; cached on disk so a
        resumed sweep and every trial of this model reuse it."""
        key = model_key(spec)
        cache = self.run.adapted_path(spec.model_label, hashlib.sha256(key.encode()).hexdigest()[:8], spec.seed)
        if key in self.adapted_states:
            base.model.load_state_dict(self.adapted_states[key])
        elif cache.is_file():
            base.model.load_state_dict(torch.load(cache, map_location="cpu", weights_only=True))
        else:
            s = self.settings
            finetune(self.on_device(base.model), self.loaders.train(base, spec.seed), s.finetune,
                     epochs=s.finetune.adapt_epochs, seed=spec.seed, on_step=on_step)
            base.model.to("cpu", memory_format=torch.contiguous_format)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            torch.save(base.model.state_dict(), tmp)
            tmp.replace(cache)  # atomic: a crash never leaves a half-written cache
        base.adapted = True

    def adapted_state(self, spec) -> Optional[dict]:
        """The adapted state dict of the spec's model, or None when it needs none."""
        base = self.get(spec)
        return {k: v.clone() for k, v in base.model.state_dict().items()} if base.adapted else None

    def teacher(self, base: UnprunedModel) -> nn.Module:
        """The unpruned model as a distillation teacher, on the device (a copy when
        that is a GPU, made once per unpruned model)."""
        if self.device.type == "cpu":
            return base.model
        if id(base) not in self._teachers:
            self._teachers[id(base)] = copy.deepcopy(base.model).to(self.device).eval()
        return self._teachers[id(base)]
