"""Expanding a sweep config into trials: every model x algorithm x allocation x rate, plus one
unpruned baseline per model with the same fine-tuning (its curve's reference), and
each of them once per `quantize` variant.

A trial's id is a hash of what defines its result: its own fields and the sweep's
settings' identity (settings.py, which explains how older run folders keep theirs).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Optional

from ..config import BASELINE, NO_VARIANT, SweepConfig, rate_label
from ..config.sections import LATENCY_TARGETS
from .settings import TrialSettings

PRUNE, REFINE, RUNG = "prune", "refine", "rung"     # a trial's stage
UNIFORM = "uniform"                   # the allocation of a trial that cuts every layer alike


@dataclass(frozen=True)
class TrialSpec:
    model: dict           # ModelSpec as a dict (name, pretrained, checkpoint, alias)
    algorithm: str        # "none" for the baseline
    target_kind: str      # channels | params | macs | latency_ms | latency (a share of the unpruned time)
    rate: float           # 0.0 for the baseline
    seed: int
    settings: TrialSettings     # what every trial of the sweep shares
    quantize: str = NO_VARIANT  # a variant of the fine-tuned model (int8), or none
    parent: Optional[str] = None    # the trial whose fine-tuned model this one starts from (cascade, refine)
    stage: str = PRUNE              # prune (and fine-tune) | refine, rung (fine-tune the parent's model further)
    budget: Optional[float] = None  # refine: the epochs it adds; rung (edgeprune find): the steps it adds
    allocation: str = UNIFORM       # how its budget is split over channel groups (edgeprune.allocate)

    @property
    def model_label(self) -> str:
        return self.model.get("alias") or self.model["name"]

    @property
    def is_baseline(self) -> bool:
        return self.algorithm == BASELINE

    @property
    def is_allocated(self) -> bool:
        return self.allocation != UNIFORM and not self.is_baseline

    @property
    def method(self) -> str:
        """What tables and figures call its pruning: the algorithm, with its allocation when
        it is not uniform ("l1+sensitivity"), so that the two sit side by side."""
        return f"{self.algorithm}+{self.allocation}" if self.is_allocated else self.algorithm

    @property
    def is_variant(self) -> bool:
        return self.quantize != NO_VARIANT

    def trained_twin(self) -> "TrialSpec":
        """The trial whose fine-tuned model this variant is made from."""
        return replace(self, quantize=NO_VARIANT)

    @property
    def is_refinement(self) -> bool:
        """It prunes nothing: it fine-tunes its parent's model further (refine, or a rung of find)."""
        return self.stage in (REFINE, RUNG)

    def as_dict(self) -> dict:
        """The spec as JSON (what results.db keeps; `from_dict` reads it back)."""
        d = {"model": json.loads(json.dumps(self.model)), "algorithm": self.algorithm,
             "target_kind": self.target_kind, "rate": self.rate, "seed": self.seed,
             "settings": self.settings.identity, "quantize": self.quantize, "parent": self.parent,
             "stage": self.stage, "budget": self.budget}
        if self.allocation != UNIFORM:      # stored specs of uniform trials read as they always did
            d["allocation"] = self.allocation
        return d

    @property
    def trial_id(self) -> str:
        d = self.as_dict()
        # fields at their defaults are left out: trials keep the ids they had before the fields existed
        for key, default in (("quantize", NO_VARIANT), ("parent", None), ("stage", PRUNE), ("budget", None)):
            if d[key] == default:
                del d[key]
        if not self.is_allocated and "allocate" in d["settings"]:     # how allocations are made: not a uniform trial's
            d["settings"] = {k: v for k, v in d["settings"].items() if k != "allocate"}
        blob = json.dumps(d, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def rate_label(self) -> str:
        return rate_label(self.algorithm, self.target_kind, self.rate)

    def describe(self) -> str:
        what = "baseline" if self.is_baseline else f"{self.method} @ {self.rate_label}"
        return (f"{self.model_label} {what}" + (f" {self.quantize}" if self.is_variant else "")
                + (f" refined +{self.budget:g} epochs" if self.stage == REFINE else "")
                + (f" rung +{self.budget:g} steps" if self.stage == RUNG else ""))

    def to_row(self) -> dict:
        # a variant is its own line in tables and figures: "resnet20 int8" beside "resnet20"
        label = f"{self.model_label} {self.quantize}" if self.is_variant else self.model_label
        return {"trial_id": self.trial_id, "model": label, "algorithm": self.method,
                "target_kind": self.target_kind, "rate": self.rate, "seed": self.seed, "spec": self.as_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "TrialSpec":
        return cls(**{**d, "settings": TrialSettings.from_identity(d["settings"])})


@dataclass(frozen=True)
class TrialTask:
    """One unit of work: a trial that prunes and fine-tunes, and the variants made
    from its model in the same process (so nothing is trained twice).

    `record` is False when the trained trial is not to be stored (it is done
    already, or the sweep asked for variants only: quantize: [int8]); `trained` then
    holds the done trial's metrics, whose `model_path` names its saved model."""
    spec: TrialSpec
    variants: tuple[TrialSpec, ...] = field(default_factory=tuple)
    record: bool = True
    trained: Optional[dict] = None
    keep_model: bool = False        # its fine-tuned model is kept (a later trial starts from it)

    @property
    def parent(self) -> Optional[str]:
        return self.spec.parent

    @property
    def trial_ids(self) -> list[str]:
        return ([self.spec.trial_id] if self.record else []) + [v.trial_id for v in self.variants]


def plan_trials(cfg: SweepConfig) -> list[TrialSpec]:
    """Every trial of the sweep, in plan order (a variant right after its twin). In a
    cascade, each model x algorithm x target kind is a chain from the lightest cut to
    the heaviest (increasing rate; a latency target from the largest to the smallest): a
    link's parent is the link before it."""
    settings = TrialSettings.from_config(cfg)
    trials = []
    for m in cfg.models:
        model = m.model_dump(mode="json")
        if cfg.baseline:
            trials += [TrialSpec(model, BASELINE, "channels", 0.0, cfg.seed, settings, q) for q in cfg.quantize]
        for algorithm in cfg.algorithms:
            for allocation in cfg.allocation:
                rates = cfg.rates
                if cfg.strategy == "cascade":
                    kinds = list(dict.fromkeys(r.kind for r in rates))
                    rates = sorted(rates, key=lambda r: (kinds.index(r.kind),
                                                         -r.value if r.kind in LATENCY_TARGETS else r.value))
                parent = None
                for i, target in enumerate(rates):
                    if cfg.strategy == "cascade" and i and rates[i - 1].kind != target.kind:
                        parent = None                    # another target kind: another chain
                    link = TrialSpec(model, algorithm, target.kind, target.value, cfg.seed, settings, parent=parent,
                                     allocation=allocation)
                    trials += [replace(link, quantize=q) for q in cfg.quantize]
                    if cfg.strategy == "cascade":
                        parent = link.trial_id
    return trials


def plan_tasks(todo: list[TrialSpec], finished: Optional[dict[str, dict]] = None,
               parents: frozenset = frozenset()) -> list[TrialTask]:
    """Group the trials to run into tasks: each trained trial with its variants, in
    plan order (a parent before its children). `finished` maps done trial ids to
    their metrics: a variant whose twin is done starts from the twin's saved model.
    Trials in `parents` keep their fine-tuned model for the trials that start from it."""
    finished = finished or {}
    todo_ids = {s.trial_id for s in todo}
    tasks: dict[str, TrialTask] = {}
    for s in todo:
        twin = s.trained_twin()
        task = tasks.get(twin.trial_id) or TrialTask(twin, (), twin.trial_id in todo_ids,
                                                     finished.get(twin.trial_id), twin.trial_id in parents)
        if s.is_variant:
            task = replace(task, variants=task.variants + (s,))
        tasks[twin.trial_id] = task
    return list(tasks.values())
