"""Verified export: ONNX and TorchScript files whose outputs are checked against
PyTorch's on given images; a file that fails the check raises ExportError.

Exporter choice: edgeprune uses torch's TorchScript-based ONNX exporter
(`torch.onnx.export(..., dynamo=False)`) by default, deliberately:
  * it needs no extra package (the torch.export-based exporter, torch's default
    since 2.9, needs `onnxscript`), and
  * it is fast: ~0.1 s for a pruned ResNet-20 against ~6 s for the dynamo exporter
    on this project's 2-core machine, which matters when every trial of a sweep is
    exported;
  * it handles everything edgeprune prunes, including the CIFAR ResNets'
    ChannelMapShortcut (index_select / index_copy become Gather / ScatterElements),
    and the parity check below proves it for each exported file.
torch marks that exporter deprecated; `exporter="dynamo"` (config
`deploy.exporter: dynamo`, with `pip install onnxscript`) selects the new one, and
the same parity check applies to both.
"""
from __future__ import annotations

import time
import warnings
from copy import deepcopy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import torch
import torch.nn as nn

from ..errors import EdgepruneError, first_line

INPUT_NAME, OUTPUT_NAME = "input", "logits"
DEFAULT_OPSET = 17
DEFAULT_ATOL = 1e-4

CheckInputs = Union[torch.Tensor, np.ndarray, Iterable]


class ExportError(EdgepruneError):
    """An export failed, or its file does not compute what the PyTorch model computes."""


@dataclass
class ExportReport:
    path: Path
    format: str                      # onnx | torchscript
    input_shape: list[int]           # the example's shape (batch first)
    dynamic_batch: bool
    max_abs_diff: float              # over every output element of the checked images
    checked: int                     # images compared
    top1_agreement: float            # share of checked images with the same argmax
    atol: float
    size_bytes: int
    seconds: float
    exporter: str = ""
    opset: Optional[int] = None
    real_images: bool = True         # False: the check ran on random inputs
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d

    def summary(self) -> str:
        what = "images" if self.real_images else "random inputs"
        return (f"{self.path} ({self.format}, {self.size_bytes / 1e6:.2f} MB): max |diff| "
                f"{self.max_abs_diff:.2e} <= {self.atol:g} on {self.checked} {what}, "
                f"top-1 agreement {100 * self.top1_agreement:.1f}%")


def as_check_batch(check_inputs: Optional[CheckInputs], input_size: int, limit: int = 64,
                   channels: int = 3, seed: int = 0) -> tuple[torch.Tensor, bool]:
    """The parity inputs as one float tensor of at most `limit` images, and whether they
    are real images: a tensor / array, an iterable of (images, labels) batches or of
    image tensors; None gives seeded random normal inputs (real_images False)."""
    if check_inputs is None:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(min(limit, 8), channels, input_size, input_size, generator=g), False
    if isinstance(check_inputs, np.ndarray):
        check_inputs = torch.from_numpy(check_inputs)
    if isinstance(check_inputs, torch.Tensor):
        x = check_inputs[:limit]
    else:
        parts, n = [], 0
        for item in check_inputs:
            t = item[0] if isinstance(item, (tuple, list)) else item
            t = torch.as_tensor(t)
            parts.append(t[:limit - n])
            n += len(parts[-1])
            if n >= limit:
                break
        if not parts:
            raise ExportError("no check inputs: the parity check needs at least one image")
        x = torch.cat(parts)
    return x.float().contiguous(), True


@torch.no_grad()
def _reference(model: nn.Module, x: torch.Tensor, batch: Optional[int]) -> np.ndarray:
    outs = [model(x[i:i + (batch or len(x))]) for i in range(0, len(x), batch or len(x))]
    return torch.cat(outs).float().numpy()


def onnx_predict(session, x: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Run an onnxruntime session over `x`, in chunks of its static batch size if it
    has one (else of `chunk`); returns the first output for all of `x`."""
    inp = session.get_inputs()[0]
    static = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
    step = static or chunk
    outs = []
    for i in range(0, len(x), step):
        part = np.ascontiguousarray(x[i:i + step], dtype=np.float32)
        if static and len(part) < static:   # pad the last chunk of a static-batch model
            pad = np.zeros((static - len(part), *part.shape[1:]), dtype=np.float32)
            outs.append(session.run(None, {inp.name: np.concatenate([part, pad])})[0][:len(part)])
        else:
            outs.append(session.run(None, {inp.name: part})[0])
    return np.concatenate(outs)


def _compare(reference: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    if reference.shape != got.shape:
        raise ExportError(f"the exported model's output has shape {got.shape}, PyTorch's {reference.shape}")
    if not np.isfinite(got).all():
        return float("inf"), float((reference.argmax(1) == np.nan_to_num(got).argmax(1)).mean())
    diff = float(np.abs(reference - got).max()) if reference.size else 0.0
    agree = float((reference.argmax(1) == got.argmax(1)).mean()) if reference.ndim == 2 else float("nan")
    return diff, agree


def tolerance(atol: float, reference: np.ndarray) -> float:
    """The largest difference accepted: `atol` for logits up to 1 in size, relative to
    their largest magnitude beyond (float32 sums in another order differ in proportion)."""
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    return atol * max(1.0, scale)


def _fail(path: Path, message: str) -> None:
    """Move a failed file aside (kept for inspection, never mistaken for a good one) and raise."""
    kept = path.with_name(path.stem + ".failed" + path.suffix)
    if path.exists():
        path.replace(kept)
        message += f"; the file was moved to {kept}"
    raise ExportError(message)


def _quiet_export_warnings():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    # We chose the TorchScript-based exporter on purpose (see the module docstring).
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    warnings.filterwarnings("ignore", message=".*feature will be removed.*")
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated.*")  # TorchScript is asked for
    return ctx


class _PoolAsMatmul(nn.Module):
    """An adaptive average pool from a fixed in_hw to out_hw as the linear map it is,
    rows x map x columns^T: the same numbers, in an op (MatMul) every ONNX runtime has."""

    def __init__(self, in_hw: tuple, out_hw: tuple):
        super().__init__()
        self.register_buffer("rows", _bins(in_hw[0], out_hw[0]))
        self.register_buffer("cols", _bins(in_hw[1], out_hw[1]))

    def forward(self, x):
        return torch.matmul(torch.matmul(self.rows, x), self.cols.t())


def _bins(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) averaging weights of adaptive pooling (torch's bin edges)."""
    w = torch.zeros(n_out, n_in)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        w[i, start:end] = 1.0 / (end - start)
    return w


def _exportable(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """`model`, or a copy whose adaptive average pools that torch's ONNX exporter refuses
    (an output size that is not a factor of the input size: AlexNet and VGG below 224 px
    pool 1x1 or 2x2 maps to 6x6 or 7x7) are the fixed linear maps they compute."""
    pools = {name: m for name, m in model.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)}
    if not pools:
        return model
    seen: dict[str, tuple] = {}

    def record(name):
        def hook(module, inputs, output) -> None:
            seen.setdefault(name, (tuple(inputs[0].shape[-2:]), tuple(output.shape[-2:])))
        return hook
    hooks = [m.register_forward_hook(record(name)) for name, m in pools.items()]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    refused = {name: sizes for name, sizes in seen.items() if any(i % o for i, o in zip(*sizes))}
    if not refused:
        return model
    copy = deepcopy(model)
    for name, (in_hw, out_hw) in refused.items():
        parent, _, child = name.rpartition(".")
        setattr(copy.get_submodule(parent) if parent else copy, child, _PoolAsMatmul(in_hw, out_hw))
    return copy


def export_onnx(model: nn.Module, path: Union[str, Path], input_size: int, *,
                check_inputs: Optional[CheckInputs] = None, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = False, batch_size: int = 1, atol: float = DEFAULT_ATOL,
                exporter: str = "torchscript", check_images: int = 64, channels: int = 3) -> ExportReport:
    """Export `model` to ONNX at `path` and check it in onnxruntime against PyTorch on
    `check_inputs` (real test images; random inputs if None). Raises ExportError when
    the export fails or the largest absolute output difference exceeds `atol`.

    The input is named "input" (N x C x H x W, float32; N dynamic with
    `dynamic_batch`, else `batch_size`), the output "logits". The model is exported
    in eval mode and left in the mode it was in."""
    from .onnx_session import make_session

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    example = torch.zeros(batch_size, channels, input_size, input_size)
    try:
        x, real = as_check_batch(check_inputs, input_size, check_images, channels)
        exported = _exportable(model, example)
        ctx = _quiet_export_warnings()
        try:
            if exporter == "torchscript":
                torch.onnx.export(exported, (example,), str(path), dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
                                  if dynamic_batch else None)
            elif exporter == "dynamo":
                try:
                    import onnxscript  # noqa: F401
                except ImportError:
                    raise ExportError("deploy.exporter 'dynamo' needs the onnxscript package "
                                      "(pip install onnxscript), or use exporter 'torchscript'") from None
                shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
                torch.onnx.export(exported, (example,), str(path), dynamo=True, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=shapes,
                                  verbose=False)
            else:
                raise ExportError(f"unknown exporter {exporter!r}; use torchscript or dynamo")
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(f"ONNX export failed: {type(e).__name__}: {first_line(e)}") from e
        finally:
            ctx.__exit__(None, None, None)
        try:
            import onnx
            onnx.checker.check_model(str(path))
            session = make_session(str(path), threads=1)
        except Exception as e:
            _fail(path, f"the exported ONNX model is invalid or does not load in onnxruntime: "
                        f"{first_line(e)}")
        reference = _reference(model, x, None if dynamic_batch else batch_size)
        got = onnx_predict(session, x.numpy())
        diff, agree = _compare(reference, got)
        if not diff <= tolerance(atol, reference):
            _fail(path, f"ONNX parity check failed for {path.name}: max |onnxruntime - torch| = {diff:.3g} > "
                        f"{tolerance(atol, reference):.3g} on {len(x)} {'images' if real else 'random inputs'} "
                        f"(top-1 agreement {100 * agree:.1f}%)")
    finally:
        model.train(was_training)
    shape = [-1 if dynamic_batch else batch_size, channels, input_size, input_size]
    return ExportReport(path, "onnx", shape, dynamic_batch, diff, len(x), agree, atol, path.stat().st_size,
                        time.perf_counter() - start, exporter=exporter, opset=opset, real_images=real)


def export_torchscript(model: nn.Module, path: Union[str, Path], input_size: int, *,
                       check_inputs: Optional[CheckInputs] = None, batch_size: int = 1,
                       atol: float = DEFAULT_ATOL, check_images: int = 64, channels: int = 3) -> ExportReport:
    """Trace `model` to TorchScript at `path`, reload the file, and check its outputs
    against the eager model's on `check_inputs` (other batch sizes than the traced one
    included); raises ExportError beyond `atol`. Load it with `torch.jit.load(path)`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        x, real = as_check_batch(check_inputs, input_size, check_images, channels)
        ctx = _quiet_export_warnings()
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, torch.zeros(batch_size, channels, input_size, input_size),
                                         check_trace=False)
            torch.jit.save(traced, str(path))
            loaded = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:
            raise ExportError(f"TorchScript export failed: {type(e).__name__}: "
                              f"{first_line(e)}") from e
        finally:
            ctx.__exit__(None, None, None)
        reference = _reference(model, x, None)
        with torch.no_grad():
            got = loaded(x).float().numpy()
        diff, agree = _compare(reference, got)
        if not diff <= tolerance(atol, reference):
            _fail(path, f"TorchScript parity check failed for {path.name}: max |traced - eager| = {diff:.3g} > "
                        f"{tolerance(atol, reference):.3g} on {len(x)} {'images' if real else 'random inputs'}")
    finally:
        model.train(was_training)
    return ExportReport(path, "torchscript", [batch_size, channels, input_size, input_size], True, diff, len(x),
                        agree, atol, path.stat().st_size, time.perf_counter() - start, exporter="torch.jit.trace",
                        real_images=real)
