"""Expanding a sweep config into trials: every model x algorithm x rate, plus one
unpruned baseline per model with the same fine-tuning (its curve's reference), and
each of them once per `quantize` variant.

A trial's id is a hash of what defines its result (`TrialSpec` minus nothing,
with the sweep's shared settings). The rule is versioned (store.IDENTITY_VERSION)
and guarded by a golden test, because run folders resume by id: settings added
after run folders existed are left out of the hash while at their defaults.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

from ..config import BASELINE, NO_VARIANT, SweepConfig, rate_label

# What the run is called, where its data and artefacts live and how trials are
# scheduled do not change a result.
_NOT_IDENTITY = {"out", "name", "executor", "threads", "ray", "storage", "save_models", "device", "models",
                 "algorithms", "rates", "baseline", "plugins", "weights_dir"}
_NESTED_NOT_IDENTITY = {("dataset", "root"), ("dataset", "download"), ("prune", "timeout_s")}
# Settings added after run folders existed, with the value that reproduces what runs
# did before: left out of the identity at that value, so an older run's settings (and
# so its trial ids) stay the same and it still resumes. Where the new default is
# another value, a resumed older run keeps the old one (adopt_stored).
OLD_BEHAVIOUR = {("quantize",): [NO_VARIANT], ("finetune", "distill"): None,
                 ("measure", "latency_batch_size"): 1, ("measure", "latency_input_size"): None,
                 ("dataset", "options"): {}, ("dataset", "skip_bad_images"): False, ("prune", "recalibrate_bn"): 0,
                 ("strategy",): "independent", ("measure", "latency_ci"): None, ("measure", "latency_max_repeats"): None,
                 ("measure", "backend_accuracy"): False, ("measure", "latency_reference"): False,
                 ("measure", "latency_min_seconds"): 0.0}
# ... and the same for each entry of measure.latency (a list of backends)
OLD_BACKEND_BEHAVIOUR = {"runtime": None, "target": None, "max_repeats": None, "ci": None, "rpc": None,
                         "tune_trials": None, "min_seconds": None}


PRUNE, REFINE = "prune", "refine"     # a trial's stage


@dataclass(frozen=True)
class TrialSpec:
    model: dict           # ModelSpec as a dict (name, pretrained, checkpoint, alias)
    algorithm: str        # "none" for the baseline
    target_kind: str      # channels | params | macs
    rate: float           # 0.0 for the baseline
    seed: int
    settings: dict        # the shared settings every trial of the sweep uses
    quantize: str = NO_VARIANT  # a variant of the fine-tuned model (int8), or none
    parent: Optional[str] = None    # the trial whose fine-tuned model this one starts from (cascade, refine)
    stage: str = PRUNE              # prune (and fine-tune) | refine (fine-tune the parent's model further)
    budget: Optional[float] = None  # refine: the epochs it adds

    @property
    def model_label(self) -> str:
        return self.model.get("alias") or self.model["name"]

    @property
    def is_baseline(self) -> bool:
        return self.algorithm == BASELINE

    @property
    def is_variant(self) -> bool:
        return self.quantize != NO_VARIANT

    def trained_twin(self) -> "TrialSpec":
        """The trial whose fine-tuned model this variant is made from."""
        return replace(self, quantize=NO_VARIANT)

    @property
    def is_refinement(self) -> bool:
        return self.stage == REFINE

    @property
    def trial_id(self) -> str:
        d = asdict(self)
        # fields at their defaults are left out: trials keep the ids they had before the fields existed
        for key, default in (("quantize", NO_VARIANT), ("parent", None), ("stage", PRUNE), ("budget", None)):
            if d[key] == default:
                del d[key]
        blob = json.dumps(d, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def rate_label(self) -> str:
        return rate_label(self.algorithm, self.target_kind, self.rate)

    def describe(self) -> str:
        what = "baseline" if self.is_baseline else f"{self.algorithm} @ {self.rate_label}"
        return (f"{self.model_label} {what}" + (f" {self.quantize}" if self.is_variant else "")
                + (f" refined +{self.budget:g} epochs" if self.is_refinement else ""))

    def to_row(self) -> dict:
        # a variant is its own line in tables and figures: "resnet20 int8" beside "resnet20"
        label = f"{self.model_label} {self.quantize}" if self.is_variant else self.model_label
        return {"trial_id": self.trial_id, "model": label, "algorithm": self.algorithm,
                "target_kind": self.target_kind, "rate": self.rate, "seed": self.seed, "spec": asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrialSpec":
        return cls(**d)


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


def resolved_precision(cfg: SweepConfig) -> str:
    """The numerics fine-tuning will use: bf16 autocast (asked for, or `auto` on a
    GPU) or fp32. Part of a trial's identity: results in bf16 are other results."""
    amp = cfg.finetune.amp
    if amp != "auto":
        return "bf16" if amp == "bf16" else "fp32"
    if cfg.device == "cpu":
        return "fp32"
    if cfg.executor == "ray":
        return "bf16" if cfg.ray.gpus_per_trial > 0 else "fp32"
    import torch
    return "bf16" if cfg.device == "cuda" or torch.cuda.is_available() else "fp32"


def shared_settings(cfg: SweepConfig) -> dict:
    """The settings that define what a result means; a run folder holds one set."""
    d = cfg.model_dump(mode="json", exclude=_NOT_IDENTITY)
    for section, key in _NESTED_NOT_IDENTITY:
        d[section].pop(key, None)
    for path, old in OLD_BEHAVIOUR.items():
        *parents, key = path
        node = d
        for part in parents:
            node = node.get(part, {})
        if key in node and node[key] == old:
            del node[key]
    if d.get("prune") == {}:
        del d["prune"]
    for entry in d["measure"]["latency"] if isinstance(d["measure"].get("latency"), list) else []:
        for key, old in OLD_BACKEND_BEHAVIOUR.items():
            if key in entry and entry[key] == old:
                del entry[key]
    if "deploy" in d and d["deploy"] == type(cfg.deploy)().model_dump(mode="json"):
        del d["deploy"]
    if resolved_precision(cfg) != "fp32":     # fp32 runs keep the ids they had before precision was recorded
        d["precision"] = resolved_precision(cfg)
    return d


def with_old_behaviour(settings: dict) -> dict:
    """`settings` with every key the identity leaves out at its old value put back:
    what a trial must run with (settings of old and new run folders alike)."""
    out = json.loads(json.dumps(settings))
    for path, old in OLD_BEHAVIOUR.items():
        *parents, key = path
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(key, old)
    return out


def adopt_stored(cfg: SweepConfig, stored: Optional[dict]) -> tuple[SweepConfig, list[str]]:
    """A run folder made before a setting existed resumes with the behaviour it was
    made with: for each such setting the config leaves at its default, the old value
    is used (and said). Settings the config sets on purpose are kept (and then the
    folder refuses them as other settings)."""
    if stored is None:
        return cfg, []
    notes = []
    for path, old in OLD_BEHAVIOUR.items():
        *parents, key = path
        node, section = stored, cfg
        for part in parents:
            node, section = node.get(part, {}) if isinstance(node, dict) else {}, getattr(section, part)
        if key in node or key in section.model_fields_set or getattr(section, key) == old:
            continue
        section.__dict__[key] = old
        notes.append(f"{'.'.join(path)}: {old!r} (this run folder predates the setting; its trials keep "
                     "what they did)")
    return cfg, notes


def plan_trials(cfg: SweepConfig) -> list[TrialSpec]:
    """Every trial of the sweep, in plan order (a variant right after its twin). In a
    cascade, each model x algorithm x target kind is a chain in increasing rate: a
    link's parent is the link before it."""
    settings = shared_settings(cfg)
    trials = []
    for m in cfg.models:
        model = m.model_dump(mode="json")
        if cfg.baseline:
            trials += [TrialSpec(model, BASELINE, "channels", 0.0, cfg.seed, settings, q) for q in cfg.quantize]
        for algorithm in cfg.algorithms:
            rates = cfg.rates
            if cfg.strategy == "cascade":
                kinds = list(dict.fromkeys(r.kind for r in rates))
                rates = sorted(rates, key=lambda r: (kinds.index(r.kind), r.value))
            parent = None
            for i, target in enumerate(rates):
                if cfg.strategy == "cascade" and i and rates[i - 1].kind != target.kind:
                    parent = None                    # another target kind: another chain
                link = TrialSpec(model, algorithm, target.kind, target.value, cfg.seed, settings, parent=parent)
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
