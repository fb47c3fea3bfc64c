"""Latency is a property of an architecture on a backend, not of a trial: trials whose
models have the same architecture (the same layer shapes: l1 and fpgm at one rate,
for instance) share one measurement per backend per run, the first one made, so
that two copies of a network are never judged apart by noise. The trial context
reuses it where it can (no second timing), and the engine makes every stored row
agree (Ray workers may time the same architecture at once)."""
from __future__ import annotations

from typing import Iterable

from ..measure.latency import TIMING

_FIRST = {"ms": "latency_ms", "p90_ms": "latency_p90_ms", "ci_rel": "latency_ci_rel", "relative": "latency_relative"}


def _labels(row: dict) -> list[str]:
    return sorted({k[len("latency_"):-len("_ms")] for k in row if k.startswith("latency_") and k.endswith("_ms")
                   and not k.endswith("_p90_ms") and k.count("_") >= 2 and k not in ("latency_ms",)
                   and not any(k.endswith(f"_{t}") for t in TIMING if t != "ms")})


class SharedTiming:
    def __init__(self, rows: Iterable[dict] = ()):
        self.by_signature: dict[str, dict[str, dict]] = {}
        for row in rows:
            self.unify(row)

    def known(self, signature: str) -> dict[str, dict]:
        return self.by_signature.get(signature, {})

    def unify(self, row: dict) -> dict:
        """Give `row` the timing its architecture already has (or record its own)."""
        sig = row.get("arch_signature")
        if not sig:
            return row
        seen = self.by_signature.setdefault(sig, {})
        for label in _labels(row):
            timing = {k: row[f"latency_{label}_{k}"] for k in TIMING if f"latency_{label}_{k}" in row}
            if label not in seen:
                seen[label] = timing
                continue
            for k, v in seen[label].items():
                row[f"latency_{label}_{k}"] = v
                if row.get("latency_backend") == label and k in _FIRST:
                    row[_FIRST[k]] = v
        return row


def unpruned_ms(ctx, base, backend) -> float | None:
    """The run's timing of the unpruned model on `backend` (its baseline trial's), or None
    before there is one. A latency target in ms is turned into a share of this one
    figure by every trial of the run: each trial's own first timing of the unpruned
    model varies with the load at that moment, and a trial timed under more load
    would cut more for the same target."""
    from ..measure.latency import architecture_signature
    timing = ctx.timing.known(architecture_signature(base.model, base.input_size)).get(backend.spec.label) or {}
    ms = timing.get("ms")
    return float(ms) if ms else None


def latency_target_ms(spec, ctx, base, backend, time_unpruned) -> float:
    """The ms a latency target asks for: `{latency_ms: x}` as written; `{latency: x}` x the
    run's timing of the unpruned model (unpruned_ms), or where the run has none yet, x
    `time_unpruned()` (a timing on the same scale as the trial's probes)."""
    if spec.target_kind == "latency_ms":
        return float(spec.rate)
    return float(spec.rate) * (unpruned_ms(ctx, base, backend) or time_unpruned())
