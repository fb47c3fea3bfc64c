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
   torch's ONNX exporter (QuantizeLinear / DequantizeLinear);
5. onnxruntime does not fuse that export's quantize / dequantize pairs (it ran slower
   than the fp32 model), so the trained weights, on the int8 grid with BatchNorm folded,
   are put in onnxruntime's own QDQ layout by its static quantization (8-bit weights,
   activation ranges calibrated); the file is checked against the converted PyTorch
   model on real images (its top-1 agreement and largest difference).

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
import onnx
import torch
import torch.nn as nn

from ..errors import EdgepruneError, first_line
from .quantize import quantize_onnx

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
             check_images: torch.Tensor, calibration, *, calibration_images: int = 256, seed: int = 0,
             dynamic_batch: bool = True, opset: int = 18, on_step=None) -> QatReport:
    """Fine-tune a copy of `model` `steps` steps with fake quantization on `loader`
    (with `cfg`'s optimiser), and write it as a QDQ int8 ONNX file at `out`
    (onnxruntime's layout; activation ranges calibrated on `calibration`)."""
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
        pt2e = out.with_name(out.stem + ".pt2e.onnx")
        onnx_program.save(str(pt2e))
    except Exception as e:  # noqa: BLE001
        raise EdgepruneError(f"qat: the int8 model could not be exported to ONNX: {type(e).__name__}: "
                             f"{first_line(e, 200)}") from None
    # onnxruntime does not fuse this export's quantize / dequantize pairs (ResNet-20: 0.95 ms, slower than
    # fp32's 0.79 and its own int8 layout's 0.40): the QAT-trained weights (BatchNorm folded, on the int8
    # grid) are put in onnxruntime's layout by its static quantization, 8-bit, activation ranges calibrated
    stripped = out.with_name(out.stem + ".qat-fp32.onnx")
    onnx.save(without_qdq(onnx.load(str(pt2e))), str(stripped))
    quantize_onnx(stripped, out, calibration, calibration_images=calibration_images, reduce_range=False)
    stripped.unlink()
    from .onnx_session import make_session
    session = make_session(str(out), 1)
    name = session.get_inputs()[0].name
    step = len(x) if dynamic_batch else 1
    got = np.concatenate([session.run(None, {name: x[i:i + step].numpy()})[0] for i in range(0, len(x), step)])
    with torch.no_grad():
        want = converted(x).numpy()
    pt2e.unlink()
    return QatReport(out, out.stat().st_size, result.steps, lr, result.seconds, time.perf_counter() - started,
                     float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean()),
                     list(result.losses))


def without_qdq(model):
    """The float graph a QDQ export computes: each weight's DequantizeLinear of an int8
    initializer becomes that float initializer (on the int8 grid), each activation's
    QuantizeLinear -> DequantizeLinear pair is dropped."""
    from onnx import numpy_helper
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    rename: dict[str, str] = {}
    drop, new_inits = set(), []
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        source = n.input[0]
        if source in inits:               # a weight: its float values
            q = numpy_helper.to_array(inits[source]).astype(np.float32)
            scale = numpy_helper.to_array(inits[n.input[1]]) if n.input[1] in inits else None
            if scale is None:
                continue
            zero = (numpy_helper.to_array(inits[n.input[2]]).astype(np.float32)
                    if len(n.input) > 2 and n.input[2] in inits else np.zeros_like(scale))
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if scale.ndim:
                shape[axis] = -1
            w = (q - zero.reshape(shape)) * scale.reshape(shape)
            new_inits.append(numpy_helper.from_array(w.astype(np.float32), n.output[0]))
            drop.add(id(n))
        elif source in producer and producer[source].op_type == "QuantizeLinear":    # an activation's pair
            rename[n.output[0]] = producer[source].input[0]
            drop.update((id(n), id(producer[source])))
    nodes = [n for n in g.node if id(n) not in drop]
    for n in nodes:
        for i, name in enumerate(n.input):
            while name in rename:
                name = rename[name]
            n.input[i] = name
    for o in g.output:
        while o.name in rename:
            o.name = rename[o.name]
    del g.node[:]
    g.node.extend(nodes)
    used = {name for n in nodes for name in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept + new_inits)
    return model
