"""Sweep configuration: a YAML file validated with pydantic, plus CLI overrides.

The config is the user's search space (models x algorithms x rates); the sweep
engine expands it into trials. Every error is raised as a one-line ConfigError
that names the key and what is allowed.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, EdgepruneError
from .registry import suggest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSpec(_Strict):
    """One model to sweep: a registry name or `package.module:factory`."""
    name: str
    pretrained: bool = True
    checkpoint: Optional[str] = None
    alias: Optional[str] = Field(None, description="label used in tables and figures")

    @property
    def label(self) -> str:
        return self.alias or self.name


class RateRange(_Strict):
    start: float = 0.1
    stop: float = 0.8
    step: float = 0.1

    def values(self) -> list[float]:
        if self.step <= 0:
            raise ValueError("rates.step must be > 0")
        n = int(math.floor((self.stop - self.start) / self.step + 1e-9)) + 1
        return [round(self.start + i * self.step, 6) for i in range(max(n, 0))]


class PruneTarget(_Strict):
    """What a trial prunes to: a per-layer channel fraction, or a global reduction
    of the model's parameters or MACs (met by searching the per-layer rate)."""
    kind: Literal["channels", "params", "macs"] = "channels"
    value: float

    @field_validator("value")
    @classmethod
    def _in_open_unit_interval(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError("a pruning rate must lie in (0, 1)")
        return v

    @property
    def label(self) -> str:
        return f"{self.value:g}" if self.kind == "channels" else f"{self.kind}={self.value:g}"


def _parse_target(item: Any) -> Any:
    """Normalise the short forms (0.5, {params: 0.5}, "macs=0.5") to {kind, value};
    pydantic then validates each, so errors carry the list index."""
    if isinstance(item, (PruneTarget, dict)) and not (isinstance(item, dict) and len(item) == 1):
        return item
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return {"kind": "channels", "value": item}
    if isinstance(item, dict):
        (kind, value), = item.items()
        return {"kind": kind, "value": value}
    if isinstance(item, str) and "=" in item:
        kind, _, value = item.partition("=")
        return {"kind": kind.strip(), "value": value.strip()}
    raise ValueError(f"a rate is a number in (0, 1), {{params: x}} or {{macs: x}}; got {item!r}")


class TargetLayers(_Strict):
    """Which layers are pruned: by type, then narrowed by fnmatch name patterns."""
    layers: list[Literal["conv2d", "linear"]] = ["conv2d"]
    include: list[str] = []
    exclude: list[str] = []


class DatasetConfig(_Strict):
    name: str = "cifar10"
    root: str = "data"
    download: bool = False
    image_size: Optional[int] = Field(None, gt=0, description="resize images to this side")
    train_fraction: float = Field(1.0, gt=0, le=1)
    test_fraction: float = Field(1.0, gt=0, le=1)
    normalization: Union[Literal["auto", "dataset", "imagenet"], tuple[list[float], list[float]]] = "auto"
    augment: bool = True
    in_memory: bool = Field(True, description="imagefolder: decode once into memory (fast) or stream "
                                              "from disk (for trees larger than memory)")


class DistillConfig(_Strict):
    """Knowledge distillation while fine-tuning a pruned model: the teacher is the
    unpruned (dataset-adapted) model; loss = (1 - weight) * CE + weight * T^2 * KL."""
    temperature: float = Field(4.0, gt=0)
    weight: float = Field(0.5, ge=0, le=1, description="share of the distillation term in the loss")


class FinetuneConfig(_Strict):
    epochs: float = Field(1, ge=0)
    max_steps: Optional[int] = Field(None, ge=0)
    batch_size: int = Field(128, gt=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    order: Literal["adapt_then_prune", "prune_then_finetune"] = "adapt_then_prune"
    adapt_epochs: float = Field(1, ge=0, description="epochs to adapt a new head before pruning")
    channels_last: bool = True
    amp: Literal["auto", "off", "bf16"] = Field("auto", description="bf16 autocast; auto: on GPUs only")
    compile: bool = Field(False, description="torch.compile the model for fine-tuning (pays off on GPUs)")
    distill: Optional[DistillConfig] = Field(None, description="true or {temperature, weight}: distil pruned "
                                             "models from the unpruned one")

    @field_validator("distill", mode="before")
    @classmethod
    def _distill_flag(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return {} if v else None
        return v


_BACKEND_ALIASES = {"torch": "torch", "eager": "torch", "pytorch": "torch",
                    "onnxruntime": "onnxruntime", "ort": "onnxruntime", "onnx": "onnxruntime"}


class LatencyBackend(_Strict):
    """Where latency is measured: `torch` (eager, this machine), `onnxruntime` (this
    machine) or `device` (an `edgeprune agent` at `device: http://HOST:PORT`). Unset
    numbers fall back to the measure section's latency_* settings."""
    backend: Literal["torch", "onnxruntime", "device"] = "torch"
    device: Optional[str] = Field(None, description="URL of an `edgeprune agent`")
    name: Optional[str] = Field(None, description="label in metric names (default: the backend)")
    threads: Optional[int] = Field(None, gt=0)
    batch_size: Optional[int] = Field(None, gt=0)
    input_size: Optional[int] = Field(None, gt=0)
    warmup: Optional[int] = Field(None, ge=0)
    repeats: Optional[int] = Field(None, gt=0)
    token_env: str = Field("EDGEPRUNE_AGENT_TOKEN", description="environment variable holding the agent's token")
    timeout: float = Field(600.0, gt=0, description="seconds to wait for the agent")

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = {"backend": "device", "device": v} if "://" in v else {"backend": v}
        if isinstance(v, dict):
            v = dict(v)
            if "device" in v and "backend" not in v:
                v["backend"] = "device"
            b = v.get("backend")
            if isinstance(b, str) and b != "device":
                if b.lower() not in _BACKEND_ALIASES:
                    raise ValueError(f"unknown latency backend {b!r}{suggest(b, ['torch', 'onnxruntime'])}; "
                                     "use torch, onnxruntime or {device: http://HOST:PORT}")
                v["backend"] = _BACKEND_ALIASES[b.lower()]
        return v

    @model_validator(mode="after")
    def _device_url(self) -> "LatencyBackend":
        if self.backend == "device":
            if not self.device or not self.device.startswith(("http://", "https://")):
                raise ValueError("a device backend needs `device: http://HOST:PORT` (where `edgeprune agent` runs)")
        elif self.device:
            raise ValueError(f"`device:` belongs to a device backend, not {self.backend}")
        return self

    @property
    def label(self) -> str:
        return self.name or self.backend


class MeasureConfig(_Strict):
    latency: Union[bool, list[LatencyBackend]] = Field(True, description="true (torch eager), false, a backend "
                                                       "(torch | onnxruntime | {device: URL}) or a list of them")
    latency_threads: int = Field(1, gt=0)
    latency_warmup: int = Field(3, ge=0)
    latency_repeats: int = Field(20, gt=0)
    latency_batch_size: int = Field(1, gt=0)
    latency_input_size: Optional[int] = Field(None, gt=0, description="default: the trial's input size")
    eval_batch_size: int = Field(500, gt=0)

    @field_validator("latency", mode="before")
    @classmethod
    def _latency_list(cls, v: Any) -> Any:
        if isinstance(v, bool) or v is None:
            return bool(v)
        parsed = []
        for i, item in enumerate(v if isinstance(v, list) else [v]):
            try:
                parsed.append(LatencyBackend.model_validate(item))
            except ValidationError as e:  # one clean line instead of pydantic's union report
                raise ValueError(f"backend {i}: {_format_validation_error(e, LatencyBackend)}") from None
        return parsed

    def latency_backends(self) -> list[LatencyBackend]:
        """The backends with every unset number filled in from the latency_* settings."""
        if self.latency is True:
            backends = [LatencyBackend()]
        elif self.latency is False:
            backends = []
        else:
            backends = list(self.latency)
        filled, seen = [], set()
        for b in backends:
            b = b.model_copy(update={
                "threads": b.threads or self.latency_threads, "batch_size": b.batch_size or self.latency_batch_size,
                "input_size": b.input_size or self.latency_input_size,
                "warmup": self.latency_warmup if b.warmup is None else b.warmup,
                "repeats": b.repeats or self.latency_repeats})
            if b.label in seen:
                raise ValueError(f"measure.latency: two backends are labelled {b.label!r}; give one a `name:`")
            seen.add(b.label)
            filled.append(b)
        return filled


class DeployConfig(_Strict):
    """ONNX export and int8 quantization of trial models (for onnxruntime / device
    latency, for `quantize: [int8]`, and for `edgeprune deploy`)."""
    opset: int = Field(17, ge=9, le=23)
    exporter: Literal["torchscript", "dynamo"] = "torchscript"
    dynamic_batch: bool = True
    parity_atol: float = Field(1e-4, gt=0, description="largest |onnxruntime - torch| accepted on test images")
    parity_images: int = Field(64, gt=0)
    calibration_images: int = Field(256, gt=0, description="training images that calibrate int8 ranges")
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    activation_type: Literal["uint8", "int8"] = "uint8"
    # 7-bit weights: onnxruntime's uint8 x int8 kernels saturate on x86 CPUs without VNNI (AVX2),
    # which cost the pretrained ResNet-20 ~1 point at 8 bits and nothing at 7 (bench/deploy.py)
    reduce_range: bool = True
    save_onnx: bool = Field(False, description="keep each trial's .onnx in RUN/onnx/ (also with save_models)")


class RayConfig(_Strict):
    """How trials run on Ray (executor: ray)."""
    address: Optional[str] = Field(None, description="existing cluster ('auto', 'ray://host:10001'); "
                                                     "default: $RAY_ADDRESS, else a local instance")
    cpus_per_trial: float = Field(1, gt=0)
    gpus_per_trial: float = Field(0, ge=0, description="fractions let small trials share a GPU")
    max_retries: int = Field(2, ge=0, description="reruns of a trial whose worker process died")
    num_cpus: Optional[int] = Field(None, gt=0, description="CPUs of a local instance (default: all)")
    dashboard: bool = False


class SweepConfig(_Strict):
    name: str = "sweep"
    out: str = "runs/sweep"
    seed: int = 0
    models: list[ModelSpec]
    algorithms: list[str] = ["l1"]
    rates: list[PruneTarget] = Field(default_factory=lambda: [PruneTarget(value=v) for v in RateRange().values()])
    baseline: bool = True
    round_to: Optional[int] = Field(None, gt=0, description="round kept channels to a multiple of this")
    target: TargetLayers = TargetLayers()
    dataset: DatasetConfig = DatasetConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    measure: MeasureConfig = MeasureConfig()
    quantize: list[Literal["none", "int8"]] = Field(["none"], description="sweep dimension: none | int8")
    deploy: DeployConfig = DeployConfig()
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = RayConfig()
    storage: Optional[str] = Field(None, description="where artefacts go: a folder or an fsspec URL "
                                                     "(default: the run folder)")
    threads: Optional[int] = Field(None, gt=0, description="torch threads per trial (default: torch's own)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where trials fine-tune and evaluate "
                                                                       "(latency is measured on the CPU)")
    save_models: bool = False

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_strings(cls, v: Any) -> Any:
        if isinstance(v, (str, dict)):
            v = [v]
        return [{"name": m} if isinstance(m, str) else m for m in v]

    @field_validator("algorithms", mode="before")
    @classmethod
    def _algorithms_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("quantize", mode="before")
    @classmethod
    def _quantize_list(cls, v: Any) -> Any:
        v = [v] if isinstance(v, (str, bool)) or v is None else v
        return ["none" if x in (None, False, "fp32") else x for x in v]

    @field_validator("rates", mode="before")
    @classmethod
    def _rates(cls, v: Any) -> Any:
        if isinstance(v, dict) and set(v) <= {"start", "stop", "step"}:
            v = RateRange(**v).values()
        if not isinstance(v, list):
            v = [v]
        return [_parse_target(x) for x in v]

    @model_validator(mode="after")
    def _check_names(self) -> "SweepConfig":
        from .models import is_known_model, model_entry, model_names
        from .prune import algorithm_names

        if not self.models:
            raise ValueError("models: name at least one model")
        for i, m in enumerate(self.models):
            if not is_known_model(m.name):
                raise ValueError(f"models.{i}: unknown model {m.name!r}"
                                 f"{suggest(m.name, model_names())}; use a name from "
                                 "`edgeprune models` or 'package.module:factory'")
            try:
                model_entry(m.name)  # imports a user's factory now, not mid-sweep
            except EdgepruneError as e:
                raise ValueError(f"models.{i}: {e}") from None
        for a in self.algorithms:
            if a not in algorithm_names():
                raise ValueError(f"algorithms: unknown algorithm {a!r}{suggest(a, algorithm_names())}; "
                                 f"choose from: {', '.join(algorithm_names())}")
        if not self.algorithms:
            raise ValueError("algorithms: name at least one algorithm")
        if not self.quantize or len(set(self.quantize)) != len(self.quantize):
            raise ValueError("quantize: name each of none / int8 at most once, and at least one")
        backends = self.measure.latency_backends()
        if not self.deploy.dynamic_batch and any(b.batch_size != 1 for b in backends if b.backend != "torch"):
            raise ValueError("measure: a latency batch size other than 1 needs deploy.dynamic_batch: true")
        if "unstructured_l1" in self.algorithms and any(r.kind != "channels" for r in self.rates):
            raise ValueError("rates: unstructured_l1 zeroes weights and cannot meet params/macs targets; "
                             "give it plain rates (a separate sweep)")
        return self


# -- loading -----------------------------------------------------------------

def _format_validation_error(err: ValidationError, cls: type[BaseModel] = SweepConfig) -> str:
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
            shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
            parts.append(f"{loc}: {msg}{shown}" if loc else msg)
    return "; ".join(parts)


def _model_at(cls: type[BaseModel], loc: tuple) -> Optional[type[BaseModel]]:
    """The pydantic model class found by walking `loc` from `cls` (skipping list indices)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or [])]
        found = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if found is None:
            return None
        cls = found
    return cls


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `key.sub=value` override in place (`models.0.pretrained=false`
    indexes a list); the value is parsed as YAML."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. --set finetune.epochs=3")
    parts = key.strip().split(".")
    node = raw
    for depth, p in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not p.isdigit() or int(p) >= len(node):
                raise ConfigError(f"--set {assignment!r}: '{p}' is not an index of a list of {len(node)}")
            i = int(p)
            if last:
                node[i] = yaml.safe_load(value)
                return
            if isinstance(node[i], str):  # a model given by name: promote it to a mapping
                node[i] = {"name": node[i]}
            node = node[i]
        elif isinstance(node, dict):
            if last:
                node[p] = yaml.safe_load(value)
                return
            node = node.setdefault(p, {})
        else:
            raise ConfigError(f"--set {assignment!r}: '{parts[depth - 1]}' is not a section")


def load_config(source: Union[str, Path, dict], overrides: list[str] = (),
                data_dir: Optional[str] = None, out: Optional[str] = None,
                check_data: bool = True) -> SweepConfig:
    """Read, override and validate a sweep config; raise ConfigError on any problem."""
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found; pass the path of a YAML sweep config")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"config file {str(path)!r}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {str(path)!r}: expected a mapping of keys at the top level")
    for assignment in overrides:
        apply_override(raw, assignment)
    if data_dir is not None:
        raw.setdefault("dataset", {})["root"] = data_dir
    if out is not None:
        raw["out"] = out
    try:
        cfg = SweepConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e)) from None
    except EdgepruneError as e:
        raise ConfigError(str(e)) from None
    if check_data:
        from .data import check_dataset
        check_dataset(cfg.dataset)
    return cfg
