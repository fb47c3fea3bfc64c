"""The entries of `quantize:`: a variant's name, or the name with options.

    quantize: [none, int8, {int8: {max_drop: 0.3}}, {qat: {steps: 200}}]

An entry with options is kept as one string, `int8(max_drop=0.3)` (the options it
sets, sorted, as JSON values): what trial ids hash and tables show, so a plain
`int8` keeps the id it had before options existed, and an option joins a variant's
identity only when it is set. The string is read back as the entry it stands for.
"""
from __future__ import annotations

import json
import re
from typing import Any, Literal, Optional

from pydantic import Field, ValidationError, field_validator

from .sections import Strict


class Int8Options(Strict):
    """int8 post-training quantization with accuracy control."""
    max_drop: Optional[float] = Field(
        None, description="the most accuracy, in points, the int8 file may lose against its fp32 twin "
        "on held-out images (held_out_from): layers that lose the most stay in float until it holds")
    held_out: int = Field(1000, gt=0, le=1_000_000, description="how many held-out images the drop is measured on")
    confidence: Optional[float] = Field(
        None, gt=0.5, lt=1, description="hold the upper end of the drop's one-sided interval at this confidence "
        "(0.95) within max_drop, not the measured drop: on a finite number of held-out images a drop larger than "
        "max_drop can measure under it; more layers may stay in float (onnxruntime's control; NNCF's, in OpenVINO, "
        "holds the measured drop)")
    held_out_from: Literal["train", "test"] = Field(
        "train", description="where they come from. train: training images after the calibration images (a "
        "model that was trained on them scores higher there than on new images, so the drop can read smaller "
        "than it is). test: the test split's images that dataset.test_fraction leaves out: never trained on, "
        "in no reported accuracy; needs test_fraction below 1")

    @field_validator("max_drop")
    @classmethod
    def _points(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and not 0 <= v <= 100:
            raise ValueError("a drop in accuracy points, from 0 to 100 (0.3 is a third of a point)")
        return v


class QatOptions(Strict):
    """Quantization-aware fine-tuning of the fine-tuned model, then int8."""
    steps: int = Field(200, gt=0, le=10_000_000, description="optimiser steps with fake quantization")
    lr: Optional[float] = Field(None, gt=0, le=10, description="its learning rate (default: a tenth of "
                                "finetune.lr, constant)")


# the variants whose row is an int8 ONNX file (latency then comes first from a backend that runs ONNX)
INT8_VARIANTS = ("int8", "qat")
# variant name -> its options (a plugin's variant takes none unless it adds its model here)
VARIANT_OPTIONS: dict[str, type[Strict]] = {"int8": Int8Options, "qat": QatOptions}

_ENTRY = re.compile(r"^([A-Za-z_][\w.:-]*)\((.*)\)$")


def variant_name(entry: str) -> str:
    """`int8(max_drop=0.3)` -> `int8`."""
    m = _ENTRY.match(entry)
    return m.group(1) if m else entry


def variant_options(entry: str) -> Any:
    """The options an entry sets, as its variant's options model (its defaults for the rest)."""
    name = variant_name(entry)
    model = VARIANT_OPTIONS.get(name)
    given = _parse_options(entry)
    if model is None:
        return given
    return model(**given)


def _parse_options(entry: str) -> dict:
    m = _ENTRY.match(entry)
    if not m or not m.group(2).strip():
        return {}
    options = {}
    for part in m.group(2).split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{entry!r}: options are written key=value, e.g. int8(max_drop=0.3)")
        try:
            options[key.strip()] = json.loads(value.strip())
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return options


def canonical_entry(item: Any) -> str:
    """One `quantize:` item (a name, {name: {options}}, or the string form) as its
    string form; options are checked against the variant's options."""
    if isinstance(item, dict):
        if len(item) != 1:
            raise ValueError(f"give one variant per entry, as {{int8: {{max_drop: 0.3}}}}, not {item!r}")
        (name, options), = item.items()
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise ValueError(f"{name}: give its options as a mapping, e.g. {{{name}: {{max_drop: 0.3}}}}")
    elif isinstance(item, str):
        name, options = variant_name(item), _parse_options(item)
    else:
        raise ValueError(f"{item!r} is not a variant: give a name (int8) or {{int8: {{max_drop: 0.3}}}}")
    if not options:
        return str(name)
    model = VARIANT_OPTIONS.get(str(name))
    if model is None:
        raise ValueError(f"{name} takes no options" + (f" (those that do: {', '.join(VARIANT_OPTIONS)})"
                                                         if VARIANT_OPTIONS else ""))
    try:
        parsed = model(**options)
    except ValidationError as e:
        from .errors import format_validation_error
        raise ValueError(f"{name}: {format_validation_error(e, model)}") from None
    given = {k: getattr(parsed, k) for k in sorted(parsed.model_fields_set)}
    return f"{name}({', '.join(f'{k}={json.dumps(v)}' for k, v in given.items())})"
