"""Loading user checkpoints safely (weights_only) with errors a user can act on."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from ..errors import CheckpointError, first_line

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")


def unwrap_state_dict(obj) -> dict:
    """The tensor mapping inside a checkpoint: bare, or under a common wrapper key,
    with a DataParallel `module.` prefix stripped."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected a state dict, got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder; give the file saved with "
                              "torch.save(model.state_dict(), path)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found; check the `checkpoint:` path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        return unwrap_state_dict(obj)
    except CheckpointError:
        raise
    except PermissionError:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read (permission denied); make it readable "
                              "by this user") from None
    except Exception as e:  # noqa: BLE001 - the unpickler of any file that is no checkpoint raises anything
        # (a text file: KeyError from the weights-only unpickler, reading its letters as opcodes)
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read as a weights-only state dict ({type(e).__name__}: "
            f"{first_line(e, 200)}); save it with torch.save(model.state_dict(), path)") from None


def mismatches(model: nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[list, list, list]:
    """(missing keys, unexpected keys, keys whose shapes differ) of `state` against `model`."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    return missing, unexpected, shapes


def describe_mismatch(model: nn.Module, state: Mapping, source: str, limit: int = 3) -> str:
    missing, unexpected, shapes = mismatches(model, state)
    own = model.state_dict()
    parts = []
    if missing:
        parts.append(f"missing {missing[:limit]}")
    if unexpected:
        parts.append(f"unexpected {unexpected[:limit]}")
    if shapes:
        parts.append("shape " + ", ".join(f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                                          for k in shapes[:limit]))
    return f"checkpoint {source} does not fit the model: " + "; ".join(parts)


def load_into(model: nn.Module, state: Mapping, source: str) -> nn.Module:
    missing, unexpected, shapes = mismatches(model, state)
    if missing or unexpected or shapes:
        raise CheckpointError(describe_mismatch(model, state, repr(source)) +
                              "; is it the right file for this model?")
    model.load_state_dict(state, strict=False)  # num_batches_tracked may be absent
    return model
