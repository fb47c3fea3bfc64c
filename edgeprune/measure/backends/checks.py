"""What every runtime's file is checked for: parity with the PyTorch model on real
test images, test accuracy in the runtime, the bytes the device stores."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ...deploy.export import ExportError, tolerance


def random_inputs(batch_size: int, side: int) -> np.ndarray:
    """What latency is timed on (the same for every model: seed 0)."""
    return np.random.default_rng(0).standard_normal((batch_size, 3, side, side)).astype(np.float32)


def parity(backend, files, session, path: Path, quantized: bool) -> dict:
    """Max |runtime - torch| and top-1 agreement on the trial's test images; an fp32
    file outside the tolerance is moved aside and raises (an int8 one is judged by its
    agreement and accuracy only)."""
    import torch
    x = files.parity_images
    with torch.no_grad():
        reference = files.model(torch.from_numpy(x)).float().numpy()
    got = np.concatenate([backend.predict(session, x[i:i + 1]) for i in range(len(x))])
    diff = float(np.abs(got - reference).max())
    agree = float((got.argmax(1) == reference.argmax(1)).mean())
    if not quantized and not diff <= tolerance(files.deploy.parity_atol, reference):
        kept = Path(str(path) + ".failed")
        shutil.move(str(path), kept)
        raise ExportError(f"{type(backend).__name__} parity check failed: max |runtime - torch| = {diff:.3g} on "
                          f"{len(x)} test images (top-1 agreement {100 * agree:.1f}%); moved to {kept}")
    return {"max_abs_diff": diff, "top1_agreement": agree}


def accuracy(backend, session, batches) -> float:
    """Top-1 test accuracy in the runtime, fed in the backend's batch size."""
    correct = total = 0
    step = backend.spec.batch_size
    for images, labels in batches:
        x = images.contiguous().numpy()
        got = np.concatenate([backend.predict(session, x[i:i + step]) for i in range(0, len(x), step)])
        correct += int((got.argmax(1) == labels.numpy()).sum())
        total += len(labels)
    return correct / total if total else float("nan")


def stored_bytes(path) -> int:
    """A file's size, or for a runtime that writes several files (graph + weights),
    every file of the same stem beside it."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.parent.glob(p.stem + ".*")) if p.parent.is_dir() else 0
