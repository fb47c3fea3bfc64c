"""Pretrained weights are resolved here, and only here.

They download to the usual torch cache (`$TORCH_HOME/hub/checkpoints`) when
online; offline, and not cached, the user gets one line that says what to do.
"""
from __future__ import annotations

import urllib.error

import torch

from ..errors import OfflineError

_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)


def _offline(model_name: str, url: str, err: Exception) -> OfflineError:
    return OfflineError(
        f"cannot download pretrained weights for {model_name!r} from {url} ({type(err).__name__}: {err}); "
        "when offline set `pretrained: false` for this model or give it a local `checkpoint:`")


def download_state_dict(url: str, model_name: str) -> dict:
    """State dict behind `url`, via the torch hub cache; unwraps {'state_dict': ...} files."""
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except _NETWORK_ERRORS as e:
        raise _offline(model_name, url, e) from None
    from .checkpoint import unwrap_state_dict
    return unwrap_state_dict(state)


def torchvision_state_dict(weights, model_name: str) -> dict:
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except _NETWORK_ERRORS as e:
        raise _offline(model_name, weights.url, e) from None
