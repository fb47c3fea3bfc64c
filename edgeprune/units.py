"""Reading numbers a user types: counts (250k, 1e6, 5.4M), sizes (500KB, 2MiB),
accuracies (0.9, 90%), accuracy points (1, 1pt) and latencies (5, 5ms, 0.005s).
Each raises a one-line EdgepruneError naming the option and what it accepts."""
from __future__ import annotations

import re

from .errors import EdgepruneError

_COUNT = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
_SIZE = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "k": 1024, "kib": 1024, "m": 1024 ** 2,
         "mib": 1024 ** 2, "g": 1024 ** 3, "gib": 1024 ** 3}


def _split(text: str, what: str) -> tuple[float, str]:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z%]*)\s*", str(text))
    if not m:
        raise EdgepruneError(f"{what}: cannot read {text!r} as a number")
    return float(m.group(1)), m.group(2).lower()


def _parse_units(text: str | float, what: str, units: dict, hint: str) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    v, unit = _split(text, what)
    if unit not in units:
        raise EdgepruneError(f"{what}: unknown unit {unit!r} in {text!r} (use {hint})")
    return v * units[unit]


def parse_count(text: str | float, what: str = "count") -> float:
    """'1e6', '1000000', '1M', '250k', '1.5G' -> a number."""
    return _parse_units(text, what, _COUNT, "k, M or G")


def parse_size(text: str | float, what: str = "size") -> float:
    """Bytes: '123456', '500KB' / '2MB' (powers of 1000), '500KiB' / '2MiB' (powers of 1024)."""
    return _parse_units(text, what, _SIZE, "KB, MB, KiB or MiB")


def parse_fraction(text: str | float, what: str = "accuracy") -> float:
    """'0.9', '90%' or '90' (a number above 1 is read as a percentage) -> 0.9."""
    if isinstance(text, (int, float)):
        v, unit = float(text), ""
    else:
        v, unit = _split(text, what)
    if unit in ("%", "pt", "pts", "pp"):
        return v / 100
    if unit:
        raise EdgepruneError(f"{what}: unknown unit {unit!r} in {text!r} (give a fraction like 0.9, or 90%)")
    if v > 100:
        raise EdgepruneError(f"{what}: {text!r} is more than 100%")
    return v / 100 if v > 1 else v


def parse_points(text: str | float, what: str = "accuracy drop") -> float:
    """An accuracy difference in points, as a fraction: '1', '1pt' and '1%' are one
    point (0.01); so is the fraction '0.01f'. A bare number is always points, so
    '--max-accuracy-drop 1' means one point, never a hundred."""
    if isinstance(text, (int, float)):
        v, unit = float(text), ""
    else:
        v, unit = _split(text, what)
    if unit == "f":
        return v
    if unit not in ("", "%", "pt", "pts", "pp"):
        raise EdgepruneError(f"{what}: unknown unit {unit!r} in {text!r} (give points: 1, 1pt or 1%)")
    if v > 100:
        raise EdgepruneError(f"{what}: {text!r} is more than 100 points")
    return v / 100


def parse_ms(text: str | float, what: str = "latency") -> float:
    if isinstance(text, (int, float)):
        return float(text)
    v, unit = _split(text, what)
    if unit in ("", "ms"):
        return v
    if unit == "s":
        return v * 1000
    if unit == "us":
        return v / 1000
    raise EdgepruneError(f"{what}: unknown unit {unit!r} in {text!r} (use ms)")
