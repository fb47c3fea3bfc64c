"""What the allocated trials of a run share, measured once and kept in RUN/allocation/
(so a resumed sweep, and every Ray worker, reads them instead of measuring again):

  runtime      per model: the channel multiple each latency backend runs fastest, and
               the first backend's block (edgeprune.allocate.rounding)
  latency      per model: the latency model fitted to the first backend's timings
               (only for allocators whose budget is latency)
  sensitivity  per model x algorithm: the sensitivity map

    inputs = AllocationInputs(ctx)         # the trial context keeps one
    inputs.sensitivity(spec, base)         # read, given (Ray's driver measured it), or measured here
    inputs.needed(spec)                    # what a trial will ask for (the Ray driver measures it first)
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

from ..allocate import LatencyModel, RuntimeProfile, SensitivityMap
from ..prune import example_input
from ..prune.groups import ChannelStructure, channel_structure
from ..registry import ALLOCATORS
from ..run import RunFolder
from .unpruned import may_need_adaptation, model_key

KINDS = ("runtime", "latency", "sensitivity")
READERS = {"runtime": lambda d: {k: RuntimeProfile.from_json(v) for k, v in d.items()},
           "latency": LatencyModel.from_json, "sensitivity": SensitivityMap.from_json}


class AllocationInputs:
    def __init__(self, ctx):
        self.ctx = ctx
        self.run = RunFolder(ctx.options.run_dir)
        self.given: dict[str, dict] = {}          # key -> JSON, measured elsewhere (a Ray task)
        self._read: dict[str, object] = {}        # key -> the object read from its JSON
        self._json: dict[str, dict] = {}
        self._structures: dict[str, ChannelStructure] = {}
        self.measured_here: set[str] = set()      # keys this process measured

    def key(self, kind: str, spec) -> str:
        return input_key(self.ctx.settings, kind, spec)

    def needed(self, spec) -> list[str]:
        return needed(self.ctx.settings, spec)

    # -- what trials ask for ------------------------------------------------------------------------------------
    def structure(self, spec, base) -> ChannelStructure:
        k = model_key(spec)
        if k not in self._structures:
            t = self.ctx.settings.target
            self._structures[k] = channel_structure(base.model, example_input(base.input_size), t.layers, t.include,
                                                    t.exclude)
        return self._structures[k]

    def runtime(self, spec, base) -> dict[str, RuntimeProfile]:
        from .allocation_measure import measure_runtime
        return self._get("runtime", spec, lambda: {k: v.to_json() for k, v in
                                                   measure_runtime(self.ctx, spec, base, self).items()})

    def latency_model(self, spec, base) -> LatencyModel:
        from .allocation_measure import fit_latency
        return self._get("latency", spec, lambda: fit_latency(self.ctx, spec, base, self).to_json())

    def sensitivity(self, spec, base) -> SensitivityMap:
        from .allocation_measure import measure_map
        return self._get("sensitivity", spec, lambda: measure_map(self.ctx, spec, base, self).to_json())

    def measure(self, kind: str, spec, base) -> dict:
        """The JSON of one input (measured here unless it is known): what a Ray task returns."""
        getattr(self, {"runtime": "runtime", "latency": "latency_model", "sensitivity": "sensitivity"}[kind])(spec,
                                                                                                             base)
        return self._json[self.key(kind, spec)]

    # -- where they come from -----------------------------------------------------------------------------------
    def path(self, kind: str, spec):
        return input_path(self.run, self.ctx.settings, kind, spec)

    def _get(self, kind: str, spec, make: Callable[[], dict]):
        key = self.key(kind, spec)
        if key not in self._read:
            data = self.given.get(key)
            path = self.path(kind, spec)
            if data is None and path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
            if data is None:
                data = make()
                self.measured_here.add(key)
                write(path, data)
            self._json[key] = data
            self._read[key] = READERS[kind](data)
        return self._read[key]


def input_key(settings, kind: str, spec) -> str:
    """One per thing measured: the settings it depends on, the model, and the algorithm
    for a map. Fine-tuning is left out (unless it adapts the model's head first), and
    for a map how latency is measured: runs that differ only there share what they
    measured (a copied RUN/allocation/ is read, not measured again)."""
    ident = {k: v for k, v in settings.identity.items() if k not in ("quantize", "strategy", "precision")}
    if not may_need_adaptation(spec, settings.finetune):
        ident.pop("finetune", None)
    if kind == "sensitivity":
        ident.pop("measure", None)
        ident.pop("deploy", None)
    parts = [kind, ident, model_key(spec)] + ([spec.algorithm] if kind == "sensitivity" else [])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def input_path(run: RunFolder, settings, kind: str, spec):
    label = spec.model_label + (f"-{spec.algorithm}" if kind == "sensitivity" else "")
    return run.allocation_path(kind, label, input_key(settings, kind, spec))


def needed(settings, spec) -> list[str]:
    """The kinds an allocated trial of `spec` will ask for, in the order they are measured."""
    if not spec.is_allocated:
        return []
    allocator = ALLOCATORS.get(spec.allocation)
    kinds = ["runtime"] if settings.latency_specs() else []
    if allocator.cost == "latency":
        kinds.append("latency")
    if allocator.needs_map:
        kinds.append("sensitivity")
    return kinds


def write(path, data: dict) -> None:
    """Atomically: a reader (a resumed sweep, a report) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)
