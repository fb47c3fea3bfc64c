"""Pretrained weights are resolved here, and only here.

A `Weights` entry says where a model's published weights live and what input they
expect (class count, normalisation, image side): preprocessing travels with the
weights. Files are named as their publishers name them, with the first hex digits
of their SHA-256 in the name (torch hub's convention: resnet20-12fca82f.th), which
is checked whenever a file is used. They come from, in order:
  * `weights_dir` (the `--weights-dir` option): a folder of such files, for offline use;
  * the torch hub cache (`$TORCH_HOME/hub/checkpoints`), where downloads go.
Offline, and not cached, the user gets one line that says what to do.
"""
from __future__ import annotations

import hashlib
import re
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import CheckpointError, OfflineError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


@dataclass(frozen=True)
class Weights:
    url: str
    num_classes: int
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    input_size: int = 224
    file_name: str = field(default="")       # default: the URL's last part

    @property
    def file(self) -> str:
        return self.file_name or self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> Optional[str]:
        m = _HASH_IN_NAME.search(self.file)
        return m.group(1) if m else None


def _verify(path: Path, weights: Weights) -> Path:
    prefix = weights.sha256_prefix
    if prefix:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if not digest.hexdigest().startswith(prefix):
            raise CheckpointError(f"weights file {str(path)!r} does not match its published checksum "
                                  f"(sha256 {digest.hexdigest()[:12]}..., expected {prefix}...); it is damaged "
                                  "or another file: download it again")
    return path


def weights_file(weights: Weights, model_name: str, weights_dir: Optional[str] = None) -> Path:
    """The verified local file of `weights`: from `weights_dir`, else the torch hub
    cache, downloading it there when missing."""
    if weights_dir:
        path = Path(weights_dir) / weights.file
        if not path.is_file():
            raise OfflineError(f"--weights-dir {weights_dir!r} has no {weights.file} for {model_name!r}; put the "
                               f"published file there (from {weights.url}) or set `pretrained: false`")
        return _verify(path, weights)
    import torch
    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.file
    if cached.is_file():
        return _verify(cached, weights)
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(weights.url, str(cached), hash_prefix=weights.sha256_prefix, progress=False)
    except RuntimeError as e:   # torch hub's checksum mismatch
        raise CheckpointError(f"the download of {weights.url} is damaged ({e}); try again") from None
    except _NETWORK_ERRORS as e:
        raise OfflineError(
            f"cannot download pretrained weights for {model_name!r} from {weights.url} ({type(e).__name__}: {e}); "
            f"offline, pass --weights-dir DIR (a folder holding {weights.file}), give the model a local "
            "`checkpoint:`, or set `pretrained: false`") from None
    return cached


def load_weights(weights: Weights, model_name: str, weights_dir: Optional[str] = None) -> dict:
    """The state dict of `weights` (read weights-only: a weights file cannot run code)."""
    from .checkpoint import read_checkpoint
    return read_checkpoint(weights_file(weights, model_name, weights_dir))
