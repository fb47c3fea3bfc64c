"""pydantic's validation errors as one line that names the key and what is allowed."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ValidationError

from ..registry import suggest


def format_validation_error(err: ValidationError, cls: type[BaseModel]) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = _model_at(cls, e["loc"][:-1])
            allowed = sorted(parent.model_fields) if parent else []
            key = str(e["loc"][-1])
            parts.append(f"unknown key '{loc}'{suggest(key, allowed)}; allowed here: {', '.join(allowed)}")
        elif e["type"] == "missing":
            parts.append(f"missing key '{loc}'")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {_short(got)})"
            parts.append(f"{loc}: {msg}{shown}" if loc else msg)
    return "; ".join(parts)


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _model_at(cls: type[BaseModel], loc: tuple) -> Optional[type[BaseModel]]:
    """The pydantic model class found by walking `loc` from `cls` (skipping list indices)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *(getattr(ann, "__args__", None) or [])]
        for c in list(candidates):          # list[X] / Optional[list[X]]: look one level deeper
            candidates += list(getattr(c, "__args__", None) or [])
        found = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if found is None:
            return None
        cls = found
    return cls
