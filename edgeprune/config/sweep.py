"""The sweep config: the user's search space (models x algorithms x rates) and how
each trial is fine-tuned, measured and run."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ..errors import EdgepruneError
from ..registry import ALGORITHMS, ALLOCATORS, EXECUTORS, MODELS, VARIANTS, load_plugins
from .search import SearchConfig
from .variants import canonical_entry, variant_name, variant_options
from .sections import (LATENCY_TARGETS, AllocateConfig, DatasetConfig, DeployConfig, FinetuneConfig, MeasureConfig,
                       ModelSpec, PruneConfig, PruneTarget, RateRange, RayConfig, Registered, Strict, TargetLayers, parse_target, registered)

NO_VARIANT = "none"    # the quantize value of a trial that is its own fine-tuned model


def _as_list(v: Any, what: str, item_kinds: tuple) -> list:
    if isinstance(v, item_kinds):
        return [v]
    if not isinstance(v, list):
        raise ValueError(f"give {what} as a list, got {type(v).__name__} {v!r}")
    return v


class SweepConfig(Strict):
    name: str = "sweep"
    out: str = "runs/sweep"
    seed: int = Field(0, ge=0, le=2**32 - 1)
    plugins: list[str] = Field([], description="modules to import first: they register their parts")
    models: list[ModelSpec]
    weights_dir: Optional[str] = Field(None, description="a folder of published weight files (offline use)")
    algorithms: list[str] = ["l1"]
    rates: list[PruneTarget] = Field(default_factory=lambda: [PruneTarget(value=v) for v in RateRange().values()])
    strategy: Literal["independent", "cascade"] = Field(
        "independent", description="independent: every rate from the unpruned model (the published protocol); "
                                   "cascade: each rate from the previous rate's fine-tuned model")
    allocation: list[str] = Field(["uniform"], description="sweep dimension: how each pruned trial's budget is "
                                  "split over its channel groups: uniform | global | sensitivity | latency (or a "
                                  "plugin's)")
    allocate: AllocateConfig = Field(default_factory=AllocateConfig)
    baseline: bool = True
    round_to: Optional[int] = Field(None, gt=0, le=4096, description="round kept channels to a multiple of this")
    target: TargetLayers = Field(default_factory=TargetLayers)   # factories: their validators read registries
    prune: PruneConfig = Field(default_factory=PruneConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    quantize: list[str] = Field([NO_VARIANT], description="sweep dimension: none | int8 | {int8: {max_drop: 0.3}} | "
                                "qat | {qat: {steps: 200}} (variants of each fine-tuned model)")
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    executor: Registered(EXECUTORS) = "local"
    ray: RayConfig = Field(default_factory=RayConfig)
    storage: Optional[str] = Field(None, description="where artefacts go: a folder or an fsspec URL "
                                                     "(default: the run folder)")
    threads: Optional[int] = Field(None, gt=0, le=1024, description="torch threads per trial (default: torch's own)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where trials fine-tune and evaluate "
                                                                       "(latency is measured on the CPU)")
    save_models: bool = False
    search: Optional[SearchConfig] = Field(None, description="`edgeprune find`: the goals, objective and budget of "
                                           "a staged search over the candidates this config names")

    @model_validator(mode="before")
    @classmethod
    def _load_plugins_first(cls, v: Any) -> Any:
        """Plugins register names that the rest of the config may use."""
        if isinstance(v, dict) and v.get("plugins"):
            plugins = v["plugins"]
            if isinstance(plugins, str):
                plugins = v["plugins"] = [plugins]
            if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
                raise ValueError("plugins: give a list of module names")
            try:
                load_plugins(plugins)
            except EdgepruneError as e:
                raise ValueError(f"plugins: {e}") from None
        return v

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_strings(cls, v: Any) -> Any:
        v = _as_list(v, "models", (str, dict))
        return [{"name": m} if isinstance(m, str) else m for m in v]

    @field_validator("algorithms", mode="before")
    @classmethod
    def _algorithms_list(cls, v: Any) -> Any:
        return _as_list(v, "algorithms", (str,))

    @field_validator("allocation", mode="before")
    @classmethod
    def _allocation_list(cls, v: Any) -> Any:
        return _as_list(v, "allocation", (str,))

    @field_validator("quantize", mode="before")
    @classmethod
    def _quantize_list(cls, v: Any) -> Any:
        v = _as_list([NO_VARIANT] if v is None else v, "quantize", (str, bool, dict))
        out = []
        for i, x in enumerate(v):
            if x in (None, False, "fp32"):
                x = NO_VARIANT
            try:
                out.append(canonical_entry(x))          # {int8: {max_drop: 0.3}} -> "int8(max_drop=0.3)"
            except ValueError as e:
                raise ValueError(f"entry {i}: {e}") from None
        return out

    @field_validator("quantize")
    @classmethod
    def _known_variants(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("name each variant (none, int8, {int8: {max_drop: 0.3}}, ...) at most once, and at "
                             "least one")
        out = []
        for x in v:
            name = variant_name(x)
            out.append(x if x == NO_VARIANT else x.replace(name, registered(VARIANTS, name), 1))
        return out

    @field_validator("rates", mode="before")
    @classmethod
    def _rates(cls, v: Any) -> Any:
        if isinstance(v, dict) and set(v) <= {"start", "stop", "step"}:
            v = RateRange(**v).values()
        return [parse_target(x) for x in _as_list(v, "rates", (int, float, str, dict))]

    @model_validator(mode="after")
    def _check_names(self) -> "SweepConfig":
        if not self.models:
            raise ValueError("models: name at least one model")
        for i, m in enumerate(self.models):
            try:
                MODELS.get(m.name)  # imports a user's factory now, not mid-sweep
            except EdgepruneError as e:
                raise ValueError(f"models.{i}: {e}; list them with `edgeprune models`, or give "
                                 "'package.module:factory'") from None
        _no_duplicates("models", [m.label for m in self.models], "give one an `alias:`")
        if not self.algorithms:
            raise ValueError("algorithms: name at least one algorithm")
        for a in self.algorithms:
            if a not in ALGORITHMS:
                raise ValueError(f"algorithms: {ALGORITHMS.unknown_message(a)}")
        _no_duplicates("algorithms", self.algorithms)
        _check_allocation(self)
        _check_held_out(self)
        if not self.rates:
            raise ValueError("rates: name at least one rate")
        _no_duplicates("rates", [r.label for r in self.rates])
        backends = self.measure.latency_backends()
        if not self.deploy.dynamic_batch and any(b.batch_size != 1 for b in backends if b.backend != "torch"):
            raise ValueError("measure: a latency batch size other than 1 needs deploy.dynamic_batch: true")
        if any(r.kind in LATENCY_TARGETS for r in self.rates) and not backends:
            raise ValueError("rates: a latency target needs a latency backend (measure.latency) to meet it on")
        _check_search(self)
        unstructured = [a for a in self.algorithms if not ALGORITHMS.get(a).structured]
        if unstructured and any(variant_name(q) == "qat" for q in self.quantize):
            raise ValueError(f"quantize: qat fine-tunes a physically pruned model; {unstructured[0]} zeroes weights "
                             "instead (they would grow back): quantize it with int8, or use a structured algorithm")
        if unstructured and any(r.kind != "channels" for r in self.rates):
            raise ValueError(f"rates: {unstructured[0]} zeroes weights and cannot meet params/macs/latency targets; "
                             "give it plain rates (a separate sweep)")
        return self


def _check_search(cfg: SweepConfig) -> None:
    goals = cfg.search.goals if cfg.search else None
    if goals is None or goals.max_latency_ms is None:
        return
    labels = [b.label for b in cfg.measure.latency_backends()]
    if not labels:
        raise ValueError("search.goals.max_latency_ms: time it somewhere: name a backend in measure.latency "
                         "(onnxruntime, openvino, a device agent, ...)")
    if goals.latency_on is not None and goals.latency_on not in labels:
        raise ValueError(f"search.goals.latency_on: {goals.latency_on!r} is not in measure.latency "
                         f"({', '.join(labels)}); name one of those, or add it there")


def _check_held_out(cfg: SweepConfig) -> None:
    """int8 that measures its drop on the test images test_fraction leaves out needs some left out."""
    for entry in cfg.quantize:
        options = variant_options(entry) if variant_name(entry) == "int8" else None
        if getattr(options, "held_out_from", "train") == "test" and cfg.dataset.test_fraction >= 1:
            raise ValueError(f"quantize: {entry} measures its drop on the test images that dataset.test_fraction "
                             "leaves out, and it leaves out none: set dataset.test_fraction below 1 (0.2 leaves "
                             "8,000 of CIFAR-10's 10,000 test images to it), or use held_out_from: train")


def _check_allocation(cfg: SweepConfig) -> None:
    if not cfg.allocation:
        raise ValueError("allocation: name at least one (uniform: every layer cut alike)")
    for a in cfg.allocation:
        if a not in ALLOCATORS:
            raise ValueError(f"allocation: {ALLOCATORS.unknown_message(a)}")
    _no_duplicates("allocation", cfg.allocation)
    allocated = [ALLOCATORS.get(a) for a in cfg.allocation if a != "uniform"]
    if not allocated:
        return
    for a in cfg.algorithms:
        pruner = ALGORITHMS.get(a)
        if not pruner.structured:
            raise ValueError(f"allocation: {a} zeroes weights, and an allocation chooses channel counts; give "
                             f"{a} a sweep with allocation: [uniform]")
        scored = [x.name for x in allocated if x.needs_scores]
        if scored and getattr(pruner, "criterion", None) is None:
            raise ValueError(f"allocation: {scored[0]} ranks a criterion's channel scores, and {a} chooses its own "
                             "channels; use sensitivity with it")
    timed = [x.name for x in allocated if x.cost == "latency"]
    if timed and not cfg.measure.latency_backends():
        raise ValueError(f"allocation: {timed[0]} allocates against measured latency and needs a latency backend "
                         "(measure.latency)")


def _no_duplicates(key: str, labels: list[str], fix: str = "remove the repeat") -> None:
    seen = set()
    for i, label in enumerate(labels):
        if label in seen:
            raise ValueError(f"{key}.{i}: {label!r} is listed twice; {fix}")
        seen.add(label)
