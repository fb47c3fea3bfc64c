"""The sections of a sweep config. Names of pluggable parts (optimisers, layer
types, latency backends, datasets) are checked against their registries, so a
plugin's names are accepted exactly like the built-in ones."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..registry import DATASETS, LATENCY_BACKENDS, LAYER_TYPES, OPTIMIZERS, RECOVERY

BASELINE = "none"      # the algorithm name of an unpruned baseline trial


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def registered(registry, name: Any) -> str:
    """`name` resolved in `registry` (aliases too), or a ValueError with suggestions."""
    if not isinstance(name, str) or name not in registry:
        raise ValueError(registry.unknown_message(name))
    return registry.canonical(name)


def Registered(registry):
    """The type of a config value that names an entry of `registry`."""
    return Annotated[str, AfterValidator(lambda v: registered(registry, v))]


def finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


LATENCY_TARGETS = ("latency_ms", "latency")     # target kinds met by timing the model


def rate_label(algorithm: str, kind: str, rate: float) -> str:
    """How a trial's rate is written everywhere: '0.5', 'params=0.5', 'baseline'."""
    if algorithm == BASELINE:
        return "baseline"
    return f"{rate:g}" if kind == "channels" else f"{kind}={rate:g}"


class ModelSpec(Strict):
    """One model to sweep: a registry name or `package.module:factory`."""
    name: str
    pretrained: bool = True
    checkpoint: Optional[str] = None
    alias: Optional[str] = Field(None, description="label used in tables and figures")

    @property
    def label(self) -> str:
        return self.alias or self.name


class RateRange(Strict):
    start: float = 0.1
    stop: float = 0.8
    step: float = 0.1

    def values(self) -> list[float]:
        if not (math.isfinite(self.start) and math.isfinite(self.stop) and math.isfinite(self.step)):
            raise ValueError("rates: start, stop and step must be finite numbers")
        if self.step <= 0:
            raise ValueError("rates.step must be > 0")
        if self.start > self.stop:
            raise ValueError(f"rates: start {self.start:g} is above stop {self.stop:g}, so the range is empty")
        n = int(math.floor((self.stop - self.start) / self.step + 1e-9)) + 1
        return [round(self.start + i * self.step, 6) for i in range(n)]


class PruneTarget(Strict):
    """What a trial prunes to: a per-layer channel fraction, a global reduction of the
    model's parameters or MACs, a latency in ms on the first latency backend, or a
    latency as a share of the unpruned model's there (the last four met by searching
    the per-layer rate). A share is read on the run's own timing of the unpruned model,
    so a sweep on a loaded machine cuts to the share asked, not to a stale ms figure."""
    kind: Literal["channels", "params", "macs", "latency_ms", "latency"] = "channels"
    value: float

    @field_validator("value")
    @classmethod
    def _in_range(cls, v: float, info) -> float:
        if info.data.get("kind") == "latency_ms":
            if not 0.0 < v < 1e6:
                raise ValueError("a latency target is a number of milliseconds > 0")
        elif not 0.0 < v < 1.0:
            raise ValueError("a latency share (x of the unpruned model's time) must lie in (0, 1)"
                             if info.data.get("kind") == "latency" else "a pruning rate must lie in (0, 1)")
        return v

    @property
    def label(self) -> str:
        return rate_label("", self.kind, self.value)


def parse_target(item: Any) -> Any:
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
    raise ValueError(f"a rate is a number in (0, 1), {{params: x}}, {{macs: x}}, {{latency_ms: ms}} or {{latency: x}}; "
                     f"got {item!r}")


class TargetLayers(Strict):
    """Which layers are pruned: by type, then narrowed by fnmatch name patterns."""
    layers: list[Registered(LAYER_TYPES)] = Field(["conv2d"], min_length=1)
    include: list[str] = []
    exclude: list[str] = []


class PruneConfig(Strict):
    """How the pruning step runs (what it prunes to is `rates`, which layers `target`)."""
    recalibrate_bn: int = Field(20, ge=0, le=10_000, description="batches that re-estimate BatchNorm statistics "
                                                                "right after pruning (0: off)")
    timeout_s: Optional[float] = Field(600.0, gt=0, le=86_400, description="the most seconds Torch-Pruning's "
                                       "group search may take before the trial fails (None: no limit)")
    reconstruct: int = Field(1024, ge=0, le=1_000_000, description="unlabeled images from which every pruned "
                             "layer is rebuilt by least squares before fine-tuning (structured algorithms; 0: off)")
    recovery: Registered(RECOVERY) = Field("lstsq", description="how pruned layers are rebuilt: lstsq (ridge "
                                           "least squares, layer by layer), or a plugin's method")
    reconstruct_from: str = Field("train", description="where those images come from: `train` (the training split, "
                                  "labels unused) or a folder of your own images")


class AllocateConfig(Strict):
    """How layer-wise allocations (`allocation: [global, sensitivity, latency]`) are made:
    the sensitivity map each model x algorithm gets once per run, and the runtime's
    channel multiple and latency model."""
    widths: list[float] = Field([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], min_length=1, max_length=99,
                                description="the kept fractions each channel group is measured at for the "
                                            "sensitivity map (the narrowest is the least a group may keep)")
    images: int = Field(512, ge=8, le=100_000, description="labelled training images (unaugmented) the map's loss "
                                                           "is measured on")
    rebuild: Union[bool, Literal["auto"]] = Field("auto", description="rebuild the cut group's consumers by least "
                                                  "squares before each of the map's measurements (auto: when trials "
                                                  "rebuild, prune.reconstruct > 0)")
    max_seconds: Optional[float] = Field(1800.0, gt=0, le=1e7, description="bound on measuring one map: beyond it "
                                         "the rebuild is dropped, then every other width, then half the images "
                                         "(null: no bound)")
    round_to: Union[Literal["auto"], int] = Field("auto", description="allocated widths are multiples of this: auto "
                                                  "measures the multiple each latency backend runs fastest (1 "
                                                  "without a backend)")
    latency_networks: Optional[int] = Field(None, ge=4, le=500, description="networks timed to fit the latency "
                                            "model (default: 2 per class of layer + 8, 14..40)")

    @field_validator("widths")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not all(0.0 < w < 1.0 for w in v):
            raise ValueError(f"give kept fractions in (0, 1), got {v}")
        if len(set(v)) != len(v):
            raise ValueError("a width is listed twice")
        return sorted(v)

    @field_validator("round_to")
    @classmethod
    def _multiple(cls, v):
        if v != "auto" and not 1 <= v <= 4096:
            raise ValueError("round_to: auto, or a channel multiple in 1..4096")
        return v


class DatasetConfig(Strict):
    name: Registered(DATASETS) = "cifar10"
    root: str = "data"
    download: bool = False
    image_size: Optional[int] = Field(None, gt=0, le=4096, description="resize images to this side")
    train_fraction: float = Field(1.0, gt=0, le=1)
    test_fraction: float = Field(1.0, gt=0, le=1)
    normalization: Union[Literal["auto", "dataset", "imagenet"], tuple[list[float], list[float]]] = "auto"
    augment: bool = True
    in_memory: bool = Field(True, description="imagefolder: decode once into memory (fast) or stream "
                                              "from disk (for trees larger than memory)")
    skip_bad_images: bool = Field(False, description="imagefolder: skip (and count) unreadable images instead "
                                                     "of stopping at the first")
    options: dict = Field(default_factory=dict, description="the dataset's own options (a plugin's)")

    @field_validator("normalization")
    @classmethod
    def _stats(cls, v):
        if isinstance(v, tuple):
            mean, std = v
            if len(mean) != 3 or len(std) != 3:
                raise ValueError(f"give [mean, std] as two lists of 3 numbers (R, G, B), got {len(mean)} and "
                                 f"{len(std)}")
            if not all(math.isfinite(x) for x in (*mean, *std)) or min(std) <= 0:
                raise ValueError("the means must be finite and every std > 0")
        return v

    @model_validator(mode="after")
    def _own_options(self) -> "DatasetConfig":
        schema = getattr(DATASETS.get(self.name), "options", None)
        if schema is None:
            if self.options:
                raise ValueError(f"dataset {self.name!r} takes no options; remove dataset.options")
        else:
            from pydantic import ValidationError

            from .errors import format_validation_error
            try:
                self.__dict__["options"] = schema.model_validate(self.options).model_dump(mode="json")
            except ValidationError as e:
                raise ValueError(f"options of dataset {self.name!r}: {format_validation_error(e, schema)}") from None
        return self


class DistillConfig(Strict):
    """Knowledge distillation while fine-tuning a pruned model: the teacher is the
    unpruned (dataset-adapted) model; loss = (1 - weight) * CE + weight * T^2 * KL."""
    temperature: float = Field(4.0, gt=0, le=1000)
    weight: float = Field(0.5, ge=0, le=1, description="share of the distillation term in the loss")


class FinetuneConfig(Strict):
    epochs: float = Field(1, ge=0, le=10_000)
    max_steps: Optional[int] = Field(None, ge=0)
    batch_size: int = Field(128, gt=0, le=65536)
    optimizer: Registered(OPTIMIZERS) = "sgd"
    lr: float = Field(0.01, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    warmup_epochs: float = Field(0.0, ge=0, le=10_000)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    order: Literal["adapt_then_prune", "prune_then_finetune"] = "adapt_then_prune"
    adapt_epochs: float = Field(1, ge=0, le=10_000, description="epochs to adapt a new head before pruning")
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


REMOTE = "device"      # the latency backend that runs on an `edgeprune agent`


class LatencySpec(Strict):
    """Where latency is measured: a registered backend on this machine (`torch`,
    `onnxruntime`, ...) or `device` (an `edgeprune agent` at `device: http://HOST:PORT`).
    Unset numbers fall back to the measure section's latency_* settings."""
    backend: str = "torch"
    device: Optional[str] = Field(None, description="URL of an `edgeprune agent`")
    name: Optional[str] = Field(None, description="label in metric names (default: the backend)")
    threads: Optional[int] = Field(None, gt=0, le=1024)
    batch_size: Optional[int] = Field(None, gt=0, le=4096)
    input_size: Optional[int] = Field(None, gt=0, le=4096)
    warmup: Optional[int] = Field(None, ge=0, le=10_000)
    repeats: Optional[int] = Field(None, gt=0, le=100_000)
    token_env: str = Field("EDGEPRUNE_AGENT_TOKEN", description="environment variable holding the agent's token")
    tls_fingerprint: Optional[str] = Field(None, description="an https:// agent's certificate fingerprint to pin "
                                           "(sha256:..., as the agent prints it; default: "
                                           "$EDGEPRUNE_AGENT_FINGERPRINT)")
    ca_file: Optional[str] = Field(None, description="an https:// agent's CA certificates (PEM; default: "
                                   "$EDGEPRUNE_AGENT_CA_FILE, else the system's)")
    timeout: float = Field(600.0, gt=0, le=86_400, description="seconds to wait for the agent")
    runtime: Optional[str] = Field(None, description="a device backend: the runtime on the device "
                                                     "(onnxruntime, openvino, litert; default onnxruntime)")
    target: Optional[str] = Field(None, description="tvm: the compiler target (default 'llvm -mcpu=native')")
    rpc: Optional[str] = Field(None, description="tvm: HOST:PORT of TVM's RPC server on the device, where the "
                                                 "module is checked and timed")
    tune_trials: Optional[int] = Field(None, gt=0, le=1_000_000, description="tvm: MetaSchedule tuning, this many "
                                       "candidate kernels timed per model (unset: TVM's default schedules)")
    max_repeats: Optional[int] = Field(None, gt=0, le=1_000_000, description="the cap of adaptive repeats")
    ci: Optional[float] = Field(None, gt=0, lt=1, description="repeat until the median's 95 % CI is within "
                                                              "+/- this fraction")
    min_seconds: Optional[float] = Field(None, ge=0, le=3600, description="timing against the reference spans at "
                                                                          "least this long")

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = {"backend": REMOTE, "device": v} if "://" in v else {"backend": v}
        if isinstance(v, dict):
            v = dict(v)
            if v.get("device"):               # {device: URL, backend: litert}: litert on the device
                if v.get("backend") not in (None, REMOTE):
                    v["runtime"] = v["backend"]
                v["backend"] = REMOTE
            b = v.get("backend")
            if isinstance(b, str) and b != REMOTE:
                if b.lower() not in LATENCY_BACKENDS:
                    raise ValueError(f"{LATENCY_BACKENDS.unknown_message(b)}, or {{device: http://HOST:PORT}}")
                v["backend"] = LATENCY_BACKENDS.canonical(b.lower())
        return v

    @model_validator(mode="after")
    def _device_url(self) -> "LatencySpec":
        if self.backend == REMOTE:
            if not self.device or not self.device.startswith(("http://", "https://")):
                raise ValueError("a device backend needs `device: http://HOST:PORT` (where `edgeprune agent` runs)")
            if (self.tls_fingerprint or self.ca_file) and not self.device.startswith("https://"):
                raise ValueError("tls_fingerprint / ca_file check an https:// agent: give device: https://HOST:PORT "
                                 "(an agent started with --tls-cert/--tls-key)")
            if self.tls_fingerprint:
                from ..agent_protocol import normalize_fingerprint
                self.__dict__["tls_fingerprint"] = normalize_fingerprint(self.tls_fingerprint)
            if self.runtime == "tvm":
                raise ValueError("tvm on a device runs through TVM's own RPC server, not the agent: "
                                 "{backend: tvm, target: 'llvm -mtriple=...', rpc: HOST:PORT}")
        elif self.device or self.tls_fingerprint or self.ca_file:
            raise ValueError(f"`device:` (and its TLS settings) belong to a device backend, not {self.backend}")
        if self.rpc is not None:
            host, _, port = self.rpc.rpartition(":")
            if self.backend != "tvm":
                raise ValueError(f"`rpc:` is TVM's RPC server; {self.backend} does not use it")
            if not host or not port.isdigit():
                raise ValueError(f"rpc: {self.rpc!r} is not HOST:PORT (e.g. rpc: 192.168.1.20:9090)")
        if self.tune_trials is not None and self.backend != "tvm":
            raise ValueError(f"`tune_trials:` is TVM's MetaSchedule tuning; {self.backend} does not tune")
        return self

    @property
    def label(self) -> str:
        return self.name or self.backend


class MeasureConfig(Strict):
    latency: Union[bool, list[LatencySpec]] = Field(True, description="true (torch eager), false, a backend "
                                                       "(torch | onnxruntime | {device: URL}) or a list of them")
    latency_threads: int = Field(1, gt=0, le=1024)
    latency_warmup: int = Field(3, ge=0, le=10_000)
    latency_repeats: int = Field(20, gt=0, le=100_000)
    latency_batch_size: int = Field(1, gt=0, le=4096)
    latency_input_size: Optional[int] = Field(None, gt=0, le=4096, description="default: the trial's input size")
    latency_ci: Optional[float] = Field(0.03, gt=0, lt=1, description="repeat until the median's 95 % confidence "
                                        "interval is within +/- this fraction of it (null: exactly latency_repeats)")
    latency_max_repeats: Optional[int] = Field(300, gt=0, le=1_000_000, description="the cap of those repeats")
    backend_accuracy: bool = Field(True, description="measure test accuracy in each latency backend's runtime")
    latency_reference: bool = Field(True, description="time each model alternating with its unpruned model: "
                                    "latency_<backend>_relative is their ratio (of 10th-percentile times), in which "
                                    "machine load cancels")
    latency_min_seconds: float = Field(1.0, ge=0, le=3600, description="with latency_reference, timing of a model "
                                       "spans at least this long (past latency_max_repeats), so that a burst of "
                                       "load cannot cover all of it")
    eval_batch_size: int = Field(500, gt=0, le=65536)

    @field_validator("latency", mode="before")
    @classmethod
    def _latency_list(cls, v: Any) -> Any:
        from pydantic import ValidationError

        from .errors import format_validation_error
        if isinstance(v, bool) or v is None:
            return bool(v)
        parsed = []
        for i, item in enumerate(v if isinstance(v, list) else [v]):
            try:
                parsed.append(LatencySpec.model_validate(item))
            except ValidationError as e:  # one clean line instead of pydantic's union report
                raise ValueError(f"backend {i}: {format_validation_error(e, LatencySpec)}") from None
        return parsed

    def latency_backends(self) -> list[LatencySpec]:
        """The backends with every unset number filled in from the latency_* settings."""
        backends = [LatencySpec()] if self.latency is True else [] if self.latency is False else list(self.latency)
        filled, seen = [], set()
        for b in backends:
            b = b.model_copy(update={
                "threads": b.threads or self.latency_threads, "batch_size": b.batch_size or self.latency_batch_size,
                "input_size": b.input_size or self.latency_input_size,
                "warmup": self.latency_warmup if b.warmup is None else b.warmup,
                "repeats": b.repeats or self.latency_repeats,
                "ci": b.ci if b.ci is not None else self.latency_ci,
                "max_repeats": b.max_repeats or self.latency_max_repeats,
                "min_seconds": self.latency_min_seconds if b.min_seconds is None else b.min_seconds})
            if b.label in seen:
                raise ValueError(f"measure.latency: two backends are labelled {b.label!r}; give one a `name:`")
            seen.add(b.label)
            filled.append(b)
        return filled


class DeployConfig(Strict):
    """ONNX export and int8 quantization of trial models (for onnxruntime / device
    latency, for `quantize: [int8]`, and for `edgeprune deploy`)."""
    opset: int = Field(17, ge=9, le=23)
    exporter: Literal["torchscript", "dynamo"] = "torchscript"
    dynamic_batch: bool = True
    parity_atol: float = Field(1e-4, gt=0, le=1e6, description="largest |onnxruntime - torch| accepted on test images")
    parity_images: int = Field(64, gt=0, le=100_000)
    calibration_images: int = Field(256, gt=0, le=1_000_000, description="training images that calibrate int8 ranges")
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    activation_type: Literal["uint8", "int8"] = "uint8"
    # 7-bit weights: onnxruntime's uint8 x int8 kernels saturate on x86 CPUs without VNNI (AVX2),
    # which cost the pretrained ResNet-20 ~1 point at 8 bits and nothing at 7 (bench/deploy.py)
    reduce_range: bool = True
    save_onnx: bool = Field(False, description="keep each trial's .onnx in RUN/onnx/ (also with save_models)")


class RayConfig(Strict):
    """How trials run on Ray (executor: ray)."""
    address: Optional[str] = Field(None, description="existing cluster ('auto', 'ray://host:10001'); "
                                                     "default: $RAY_ADDRESS, else a local instance")
    cpus_per_trial: float = Field(1, gt=0, le=1024)
    gpus_per_trial: float = Field(0, ge=0, le=64, description="fractions let small trials share a GPU")
    max_retries: int = Field(2, ge=0, le=100, description="reruns of a trial whose worker process died")
    num_cpus: Optional[int] = Field(None, gt=0, description="CPUs of a local instance (default: all)")
    dashboard: bool = False
