"""Data-free preparation of an fp32 ONNX graph for int8 (Nagel et al. 2019, "Data-Free
Quantization", as AIMET does it), on the graph onnxruntime quantizes: BatchNorm is
already folded into the convolutions there.

    equalize(model) -> pairs        cross-layer equalisation: Conv -> ReLU -> Conv pairs
                                    rescaled so that each channel's weight range is shared
                                    by both layers (ReLU(x / s) = ReLU(x) / s for s > 0,
                                    so the network computes the same function)
    bias_shifts(fp32, int8, images) -> {layer: shift}
    with_corrected_biases(fp32, shifts, exclude) -> model
                                    bias correction: each int8 layer's bias absorbs the
                                    mean shift its quantized weights cause on real inputs
                                    (a layer kept in float keeps its bias)

Only ReLU pairs are equalised: ReLU6 (Clip 0..6) is not scale-invariant, and AIMET's
way round it (replacing ReLU6 by ReLU) changes the fp32 model; such pairs are left as
they are. equalize edits the ModelProto in place.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import onnx
from onnx import numpy_helper

WEIGHT_OPS = ("Conv", "Gemm")        # the layers whose weights are quantized (and corrected)


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model, self.g = model, model.graph
        self.inits = {i.name: i for i in self.g.initializer}
        self.consumers: dict[str, list] = {}
        for n in self.g.node:
            for name in n.input:
                self.consumers.setdefault(name, []).append(n)

    def array(self, name: str) -> Optional[np.ndarray]:
        init = self.inits.get(name)
        return None if init is None else numpy_helper.to_array(init).astype(np.float32, copy=True)

    def set(self, name: str, value: np.ndarray) -> None:
        self.inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    def only_use(self, name: str) -> bool:
        return len(self.consumers.get(name, [])) == 1


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _pairs(g: _Graph) -> list[tuple]:
    """(A, B) for each Conv A -> Relu -> Conv B whose middle tensors and weights are
    used by nothing else, B plain or depthwise (its input channel i meets only weights
    that A's channel i feeds)."""
    found = []
    for a in g.g.node:
        if a.op_type != "Conv" or len(a.input) < 2 or a.input[1] not in g.inits or not g.only_use(a.input[1]):
            continue
        uses = g.consumers.get(a.output[0], [])
        if len(uses) != 1 or uses[0].op_type != "Relu":
            continue
        after = g.consumers.get(uses[0].output[0], [])
        if len(after) != 1 or after[0].op_type != "Conv":
            continue
        b = after[0]
        if b.input[0] != uses[0].output[0] or b.input[1] not in g.inits or not g.only_use(b.input[1]):
            continue
        if len(a.input) > 2 and a.input[2] and (a.input[2] not in g.inits or not g.only_use(a.input[2])):
            continue
        wa, wb = g.array(a.input[1]), g.array(b.input[1])
        channels, group = wa.shape[0], _attr(b, "group", 1)
        if wa.ndim != 4 or wb.ndim != 4:
            continue
        if group == 1 and wb.shape[1] == channels or group == channels and wb.shape[:2] == (channels, 1):
            found.append((a, b))
    return found


def equalize(model: onnx.ModelProto, rounds: int = 20) -> int:
    """Cross-layer equalisation of every Conv -> ReLU -> Conv pair; chains (a layer that
    is the second of one pair and the first of the next) are iterated until they
    settle. Returns the number of pairs."""
    g = _Graph(model)
    pairs = _pairs(g)
    for _ in range(rounds if pairs else 0):
        moved = 0.0
        for a, b in pairs:
            wa, wb = g.array(a.input[1]), g.array(b.input[1])
            depthwise = _attr(b, "group", 1) != 1
            r1 = np.abs(wa).max(axis=(1, 2, 3))
            r2 = np.abs(wb).max(axis=(1, 2, 3) if depthwise else (0, 2, 3))
            ok = (r1 > 0) & (r2 > 0)
            s = np.ones_like(r1)
            s[ok] = np.sqrt(r1[ok] / r2[ok])
            s = np.clip(s, 1e-4, 1e4)           # a dead channel is not blown up
            g.set(a.input[1], wa / s[:, None, None, None])
            if len(a.input) > 2 and a.input[2]:
                g.set(a.input[2], g.array(a.input[2]) / s)
            g.set(b.input[1], wb * (s[:, None, None, None] if depthwise else s[None, :, None, None]))
            moved = max(moved, float(np.abs(np.log(s)).max(initial=0.0)))
        if moved < 1e-3:
            break
    return len(pairs)


def _dequantized_weights(int8: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Each Conv / Gemm node's weights as the int8 graph computes them (its
    DequantizeLinear of the int8 initializer), by node name."""
    g = _Graph(int8)
    producer = {o: n for n in g.g.node for o in n.output}
    out = {}
    for n in g.g.node:
        if n.op_type not in WEIGHT_OPS or len(n.input) < 2:
            continue
        dq = producer.get(n.input[1])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = numpy_helper.to_array(g.inits[dq.input[0]]).astype(np.float32) if dq.input[0] in g.inits else None
        scale = g.array(dq.input[1])
        if q is None or scale is None:
            continue
        zero = (numpy_helper.to_array(g.inits[dq.input[2]]).astype(np.float32)
                if len(dq.input) > 2 and dq.input[2] in g.inits else np.zeros_like(scale))
        axis = _attr(dq, "axis", 1)
        shape = [1] * q.ndim
        if scale.ndim:
            shape[axis] = -1
        out[n.name] = (q - zero.reshape(shape)) * scale.reshape(shape)
    return out


def bias_shifts(fp32: onnx.ModelProto, int8: onnx.ModelProto, images: Iterable[np.ndarray],
                batch: int = 16) -> dict[str, np.ndarray]:
    """The mean output shift (per output channel) that each layer's quantized weights
    (as `int8` holds them) cause on `images`' activations in `fp32`: what its bias
    absorbs (with_corrected_biases)."""
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F

    quantized = _dequantized_weights(int8)
    g = _Graph(fp32)
    layers = [n for n in g.g.node if n.op_type in WEIGHT_OPS and n.name in quantized and n.input[1] in g.inits
              and (n.op_type != "Conv" or _attr(n, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
              and (n.op_type != "Gemm" or (_attr(n, "transA", 0) == 0 and _attr(n, "alpha", 1.0) == 1.0))]
    if not layers:
        return {}
    graph_inputs = {i.name for i in g.g.input}
    probe = onnx.ModelProto()
    probe.CopyFrom(fp32)
    known = {o.name for o in probe.graph.output}
    for n in layers:
        if n.input[0] not in graph_inputs and n.input[0] not in known:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None))
            known.add(n.input[0])
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed_name = session.get_inputs()[0].name
    static = session.get_inputs()[0].shape[0]
    step = static if isinstance(static, int) and static > 0 else batch
    shift = {n.name: 0.0 for n in layers}
    count = {n.name: 0 for n in layers}
    for chunk in images:
        for i in range(0, len(chunk) - step + 1 if isinstance(static, int) and static > 0 else len(chunk), step):
            x = np.ascontiguousarray(chunk[i:i + step])
            acts = dict(zip(names, session.run(names, {feed_name: x})))
            acts[feed_name] = x
            for n in layers:
                inp = torch.from_numpy(acts[n.input[0]])
                dw = torch.from_numpy(quantized[n.name] - g.array(n.input[1]))
                if n.op_type == "Conv":
                    pads = list(_attr(n, "pads", [0] * (2 * (inp.ndim - 2))))
                    half = len(pads) // 2
                    if pads[:half] != pads[half:]:       # asymmetric: F.pad takes (left, right, top, bottom)
                        inp = F.pad(inp, [p for k in reversed(range(half)) for p in (pads[k], pads[k + half])])
                        pads = [0] * len(pads)
                    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}.get(inp.ndim)
                    if conv is None:
                        continue
                    y = conv(inp, dw, stride=_attr(n, "strides", 1), padding=pads[:half] or 0,
                             dilation=_attr(n, "dilations", 1), groups=_attr(n, "group", 1))
                    mean = y.mean(dim=[0, *range(2, y.ndim)]).numpy()
                else:                                  # Gemm: y = x W^T (transB) or x W
                    w = dw.T if _attr(n, "transB", 0) else dw
                    mean = (inp.reshape(len(inp), -1) @ w).mean(dim=0).numpy()
                shift[n.name] = shift[n.name] + mean * len(x)
                count[n.name] += len(x)
    return {n.name: shift[n.name] / count[n.name] for n in layers if count[n.name]}


def with_corrected_biases(model: onnx.ModelProto, shifts: dict[str, np.ndarray],
                          exclude: Iterable[str] = ()) -> onnx.ModelProto:
    """A copy of `model` whose layers absorb their `shifts` in their bias, except the
    layers in `exclude` (they stay in float: their weights are not quantized, so their
    bias stays as it was)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g, skip = _Graph(out), set(exclude)
    for n in g.g.node:
        mean = shifts.get(n.name)
        if mean is None or n.name in skip:
            continue
        if len(n.input) > 2 and n.input[2]:
            if n.input[2] in g.inits and g.only_use(n.input[2]):
                g.set(n.input[2], g.array(n.input[2]) - mean)
        else:                                         # no bias yet: give it one
            name = f"{n.name}_corrected_bias"
            out.graph.initializer.append(numpy_helper.from_array((-mean).astype(np.float32), name))
            while len(n.input) < 3:
                n.input.append("")
            n.input[2] = name
    return out
