"""A pruned model as a file that loads without running code.

The file holds plain data only, read back with `torch.load(weights_only=True)`:
how the unpruned architecture is built (its registry name and weights source),
Torch-Pruning's pruning history, the state dict and the model's metadata.
Loading builds the architecture, replays the history on it (the same channels
removed from the same layers) and loads the weights strictly. A file that is not
in this format, a pickled module from an older edgeprune included, is refused.
"""
from __future__ import annotations

import io
from typing import Optional

import torch
import torch.nn as nn

from ..errors import EdgepruneError, first_line
from ..models import create_model
from .structured import replay

FORMAT = "edgeprune-model/1"


def model_record(model: nn.Module, history: list, model_spec: dict, input_size: int) -> dict:
    """What `dumps` writes: enough to rebuild `model` (pruned by `history`)."""
    meta = dict(getattr(model, "edgeprune_meta", {}))
    return {"format": FORMAT, "model": {k: model_spec.get(k) for k in ("name", "pretrained", "checkpoint")},
            "num_classes": int(meta.get("num_classes") or 0), "input_size": int(input_size),
            "history": [[str(n), bool(out), [int(i) for i in idxs]] for n, out, idxs in history],
            "meta": {k: (list(v) if isinstance(v, tuple) else v) for k, v in meta.items()},
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}}


def dumps(model: nn.Module, history: list, model_spec: dict, input_size: int) -> bytes:
    buf = io.BytesIO()
    torch.save(model_record(model, history, model_spec, input_size), buf)
    return buf.getvalue()


def loads(data: bytes, source: str = "the saved model") -> nn.Module:
    """The model `dumps` wrote (eval mode). Raises EdgepruneError naming `source`
    when the bytes are not such a file."""
    try:
        record = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickles with code, garbage, truncation: all refused
        raise EdgepruneError(f"{source} is not an edgeprune model file ({first_line(e, 160)}); it is refused "
                             "rather than unpickled") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise EdgepruneError(f"{source} is not an edgeprune model file (format "
                             f"{record.get('format') if isinstance(record, dict) else type(record).__name__!r})")
    m = record["model"]
    model = create_model(m["name"], record["num_classes"], pretrained=bool(m.get("pretrained")),
                         checkpoint=m.get("checkpoint"), architecture_only=True)
    replay(model, record["history"], torch.zeros(1, 3, record["input_size"], record["input_size"]))
    try:
        model.load_state_dict(record["state_dict"], strict=True)
    except RuntimeError as e:
        raise EdgepruneError(f"{source} does not fit the rebuilt architecture ({first_line(e, 200)})") from None
    model.edgeprune_meta = dict(record.get("meta") or {})
    model.edgeprune_history = record["history"]
    return model.eval()


def history_of(model: nn.Module) -> Optional[list]:
    """The pruning history a model carries (set on trial models), if any."""
    return getattr(model, "edgeprune_history", None)


def load_model(path) -> nn.Module:
    """A model file edgeprune wrote (`model.edgeprune.pt`, RUN/models/ID.pt)."""
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        raise EdgepruneError(f"model file {str(path)!r} not found")
    return loads(path.read_bytes(), source=str(path))
