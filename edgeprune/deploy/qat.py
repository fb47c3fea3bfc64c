"""Quantization-aware fine-tuning (QAT) with PyTorch's PT2E flow, exported as a QDQ
int8 ONNX file that runtimes measure like a post-training one.

    report = qat_int8(model, loader, finetune_cfg, steps, lr, out_path, input_size, example)

1. torch.export of the fine-tuned fp32 model (train mode, dynamic batch);
2. prepare_qat_pt2e with the X86 inductor quantizer's QAT configuration: fake
   quantization of per-channel symmetric int8 weights and uint8 activations (what
   onnxruntime's QDQ files hold), BatchNorm folded as the int8 model will have it;
3. `steps` optimiser steps of edgeprune's fine-tuning loop (finetune.optimizer, a
   cosine schedule from `lr`);
4. convert_pt2e (quantize / dequantize pairs with the learned scales), exported by
   torch's ONNX exporter (QuantizeLinear / DequantizeLinear), and checked against the
   converted PyTorch model on real images.

torch 2.14 keeps the PT2E flow in torchao (torch.ao's was removed), and the export of
its quantize / dequantize ops needs torch's newer ONNX exporter (onnxscript): the `qat`
extra installs both.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from ..errors import EdgepruneError, first_line

REQUIRES = ("torchao", "onnxscript")


def missing() -> Optional[str]:
    """Why QAT cannot run here (its packages), or None."""
    absent = [m for m in REQUIRES if importlib.util.find_spec(m) is None]
    if absent:
        return f"quantize: qat needs {' and '.join(absent)}: pip install 'edgeprune[qat]'"
    return None


@dataclass
class QatReport:
    path: Path
    size_bytes: int
    steps: int
    lr: float
    seconds: float                 # fine-tuning with fake quantization
    export_seconds: float
    max_abs_diff: float            # |onnxruntime - the converted PyTorch model| on the check images
    top1_agreement: float
    losses: list


class _Exported(nn.Module):
    """An exported program's module, trained by the ordinary loop: train() / eval() move
    it between modes the way PT2E graphs must be moved (BatchNorm, fake quantizers)."""

    def __init__(self, gm: nn.Module):
        super().__init__()
        self.gm = gm

    def forward(self, x):
        return self.gm(x)

    def train(self, mode: bool = True):
        from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self.gm)
        self.training = mode
        return self


def qat_int8(model: nn.Module, loader, cfg, steps: int, lr: float, out: Path, input_size: int,
             check_images: torch.Tensor, *, seed: int = 0, dynamic_batch: bool = True, opset: int = 18,
             on_step=None) -> QatReport:
    """Fine-tune a copy of `model` `steps` steps with fake quantization on `loader`
    (with `cfg`'s optimiser), and write it as a QDQ int8 ONNX file at `out`."""
    why = missing()
    if why:
        raise EdgepruneError(why)
    import copy

    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)

    from ..train import finetune

    device = next(model.parameters()).device
    student = copy.deepcopy(model).train()
    example = next(iter(loader))[0][:2].to(device)
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        graph = torch.export.export(student, (example,), dynamic_shapes=({0: batch},)).module()
        quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=True))
        prepared = prepare_qat_pt2e(graph, quantizer)
    except Exception as e:  # noqa: BLE001 - a model PT2E cannot trace: one line
        raise EdgepruneError(f"qat: PyTorch's PT2E flow could not prepare the model: {type(e).__name__}: "
                             f"{first_line(e, 200)}") from None
    wrapped = _Exported(prepared)
    # the fine-tuning loop as configured, for `steps` steps from `lr`; no warm-up, no distillation
    qat_cfg = cfg.model_copy(update={"epochs": steps / max(len(loader), 1) + 1, "max_steps": steps, "lr": lr,
                                     "warmup_epochs": 0.0, "channels_last": False, "compile": False,
                                     "amp": "off", "distill": None})
    result = finetune(wrapped, loader, qat_cfg, seed=seed, on_step=on_step)
    wrapped.train(False)
    started = time.perf_counter()
    converted = convert_pt2e(prepared.to("cpu"))
    x = check_images.contiguous().float()
    shapes = ({0: batch},) if dynamic_batch else None
    example = x[:2] if dynamic_batch else x[:1]
    try:
        program = torch.export.export(converted, (example,), dynamic_shapes=shapes)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():   # its progress lines
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(program, (example,), dynamo=True, opset_version=opset,
                                             input_names=["input"], output_names=["logits"], verbose=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx_program.save(str(out))
    except Exception as e:  # noqa: BLE001
        raise EdgepruneError(f"qat: the int8 model could not be exported to ONNX: {type(e).__name__}: "
                             f"{first_line(e, 200)}") from None
    from .onnx_session import make_session
    session = make_session(str(out), 1)
    name = session.get_inputs()[0].name
    step = len(x) if dynamic_batch else 1
    got = np.concatenate([session.run(None, {name: x[i:i + step].numpy()})[0] for i in range(0, len(x), step)])
    with torch.no_grad():
        want = converted(x).numpy()
    return QatReport(out, out.stat().st_size, result.steps, lr, result.seconds, time.perf_counter() - started,
                     float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean()),
                     list(result.losses))
