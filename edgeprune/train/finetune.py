"""Fine-tuning a (pruned) model: one plain, seeded training loop."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import OPTIMIZERS
from .optim import warmup_cosine

# on_step(step, total_steps, epoch) is called after every optimiser step
StepCallback = Callable[[int, int, float], None]


@dataclass
class FinetuneResult:
    steps: int
    epochs: float
    seconds: float
    final_loss: float
    losses: list[float] = field(default_factory=list)   # mean loss per (partial) epoch
    distilled: bool = False


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, weight: float, criterion: nn.Module) -> torch.Tensor:
    """(1 - weight) * criterion(student, labels) + weight * T^2 * KL(teacher_T || student_T)
    (Hinton et al. 2015); T^2 keeps the soft term's gradients on the scale of the hard one."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    if weight >= 1.0:
        return soft
    return (1.0 - weight) * criterion(student_logits, labels) + weight * soft


def planned_steps(cfg, batches_per_epoch: int, epochs: Optional[float] = None) -> int:
    epochs = cfg.epochs if epochs is None else epochs
    steps = int(math.ceil(epochs * batches_per_epoch))
    return min(steps, cfg.max_steps) if cfg.max_steps is not None else steps


def _autocast(amp: str, device: torch.device):
    """bf16 autocast: on GPUs for `auto`, anywhere for `bf16`, never for `off`."""
    enabled = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def finetune(model: nn.Module, loader, cfg, *, epochs: Optional[float] = None, seed: int = 0,
             on_step: Optional[StepCallback] = None, teacher: Optional[nn.Module] = None,
             distill=None, on_epoch: Optional[Callable[[int, nn.Module], None]] = None) -> FinetuneResult:
    """Train `model` in place on `loader` for `epochs` (default cfg.epochs), capped by
    cfg.max_steps: SGD-Nesterov or AdamW, warm-up + cosine, label smoothing.

    With a `teacher`, the loss distils it (`distill`, default cfg.distill, gives the
    temperature and weight; 4.0 and 0.5 if neither is set). The teacher is run in
    eval mode without gradients and is not changed."""
    torch.manual_seed(seed)
    loader.generator.manual_seed(seed)
    per_epoch = len(loader)
    total = planned_steps(cfg, per_epoch, epochs)
    start = time.perf_counter()
    if total == 0:
        return FinetuneResult(0, 0.0, 0.0, float("nan"))
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    device = next(model.parameters()).device
    optimizer = OPTIMIZERS.get(cfg.optimizer)(model, cfg)
    forward = torch.compile(model) if getattr(cfg, "compile", False) else model
    autocast = _autocast(getattr(cfg, "amp", "off"), device)
    warmup = int(round(cfg.warmup_epochs * per_epoch))
    scheduler = warmup_cosine(optimizer, total, warmup)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    if teacher is not None:
        distill = distill if distill is not None else getattr(cfg, "distill", None)
        temperature, weight = (getattr(distill, "temperature", 4.0), getattr(distill, "weight", 0.5))
        teacher_was_training = teacher.training
        teacher.eval()
    model.train()
    # the running loss stays on the device: no GPU sync per step
    step, losses, running, count = 0, [], torch.zeros((), device=device), 0
    while step < total:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                if teacher is None:
                    loss = criterion(forward(x), y)
                else:
                    with torch.no_grad():
                        target = teacher(x)
                    loss = distillation_loss(forward(x), target, y, temperature, weight, criterion)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            running += loss.detach().float()
            count += 1
            if on_step:
                on_step(step, total, step / per_epoch)
            if step >= total:
                break
        losses.append(float(running) / max(count, 1))
        running, count = torch.zeros((), device=device), 0
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"training diverged (loss {losses[-1]}); lower finetune.lr")
        if on_epoch:  # e.g. evaluate the recovery curve; evaluate() restores train mode
            on_epoch(len(losses), model)
    model.eval()
    if teacher is not None:
        teacher.train(teacher_was_training)
    return FinetuneResult(step, step / per_epoch, time.perf_counter() - start, losses[-1], losses,
                          distilled=teacher is not None)
