"""Apache TVM: ONNX -> Relax -> a module compiled for a target, with TVM's default
kernel schedules or, under `tune_trials`, schedules that MetaSchedule searched for
and timed on this machine (or, through `rpc:`, on the device)."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import socket
from pathlib import Path

import numpy as np

from ...errors import EdgepruneError, first_line
from ..latency import Measurement, spread
from .base import LatencyBackend

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: tuning is not serialised between processes
    fcntl = None


def tvm_target(text: str, num_cores: int | None = None) -> dict:
    """'llvm -mcpu=native -mtriple=aarch64-linux-gnu' as the dict TVM 0.2x takes."""
    kind, *options = text.split()
    target: dict = {"kind": kind}
    for option in options:
        key, _, value = option.lstrip("-").partition("=")
        target[key] = value if value else True
    if target.get("mcpu") == "native":      # LLVM no longer takes "native": name this CPU
        from tvm.target import codegen
        target["mcpu"] = codegen.llvm_get_system_cpu()
    if num_cores is not None:               # MetaSchedule needs it, to plan parallel loops
        target.setdefault("num-cores", num_cores)
    return target


def tuning_folder(target: str, threads: int) -> Path:
    """Where MetaSchedule's database for this machine, target and thread count lives
    ($EDGEPRUNE_TVM_TUNING, default ~/.cache/edgeprune/tvm-tuning/...): kernels tuned
    once (one trial's layer shapes, an earlier run's) are looked up, not tuned again."""
    root = os.environ.get("EDGEPRUNE_TVM_TUNING") or \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeprune" / "tvm-tuning"
    key = hashlib.sha256(f"{socket.gethostname()}|{target}|{threads}".encode()).hexdigest()[:12]
    return Path(root) / key


@contextlib.contextmanager
def _exclusive(folder: Path):
    """One tuner per database at a time: two would time their kernels against each other."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


def register_intrinsics() -> None:
    """Import tvm.s_tir.tensor_intrin (MetaSchedule's tuning contexts need its tensor
    intrinsics) with inspect.getmodule memoised per file: TVMScript calls it ~30,000
    times while parsing them, each call scanning every loaded module when the file is
    importlib's own (a '<frozen ...>' name no module has), which took 35 s beside torch
    here (2-3 s memoised)."""
    import sys
    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    import inspect
    original, memo = inspect.getmodule, {}

    def getmodule(obj, _filename=None):
        if inspect.ismodule(obj) or hasattr(obj, "__module__"):
            return original(obj, _filename)
        try:
            key = _filename or inspect.getabsfile(obj)
        except TypeError:
            return original(obj, _filename)
        if key not in memo:
            found = original(obj, _filename)
            if found is None and not os.path.basename(key).startswith("<"):
                return None           # a module may still come to own this file: ask again next time
            memo[key] = found
        return memo[key]
    inspect.getmodule = getmodule
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401  (registers them)
    finally:
        inspect.getmodule = original


def build_kernel(mod, target, _params):
    """MetaSchedule's default build of one candidate kernel, without first importing
    tvm.s_tir.tensor_intrin: registering those intrinsics takes 25-40 s per build worker
    here, longer than the builder's timeout, so every candidate failed to build (a
    scheduled kernel already carries its tensorized body; building needs no registry)."""
    from tvm.driver import build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
    return build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def _kernels(mod, target):
    """`mod` legalized into TIR kernels, fused (conv + add + relu as one kernel) where
    TVM can lower the fused graph, else one kernel per operator: FuseOps left a
    symbolic shape that VMShapeLower could not compute in the CIFAR ResNets' channel
    maps (take / scatter_elements)."""
    import tvm
    from tvm import relax
    t = relax.transform
    first = [t.DecomposeOpsForInference(), t.CanonicalizeBindings(), t.LegalizeOps(), t.AnnotateTIROpPattern(),
             t.FoldConstant()]
    with target:
        fused = tvm.transform.Sequential([*first, t.FuseOps(), t.FuseTIR()])(mod)
    try:
        tvm.compile(fused, target=target)
        return fused
    except Exception:  # noqa: BLE001 - TVM raises its own types
        with target:
            return tvm.transform.Sequential(first)(mod)


def tune(mod, target, trials: int, folder: Path, seed: int = 0):
    """`mod` with MetaSchedule's schedules: `trials` candidate kernels timed for the
    whole model, shared evenly over its kernels (tasks); a kernel already in the
    database is not tuned again. Returns the module with the best records applied."""
    import tvm.s_tir.meta_schedule as ms
    from tvm import relax
    register_intrinsics()
    mod = _kernels(mod, target)
    with _exclusive(folder):
        database = ms.database.JSONDatabase(work_dir=str(folder))
        tasks = ms.relax_integration.extract_tasks(mod, target)
        todo = [t for t in tasks if database.query_tuning_record(t.dispatched[0], target, "main") is None]
        per_task = max(1, math.ceil(trials / max(1, len(tasks))))
        if todo:
            contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                extracted_tasks=todo, work_dir=str(folder), seed=seed)
            # its progress (INFO) goes to folder/logs only, not to the sweep's output
            quiet = logging.getLogger("tvm.s_tir.meta_schedule")
            if quiet.level == logging.NOTSET:
                quiet.setLevel(logging.WARNING)
            ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(folder),
                               max_trials_global=per_task * len(todo), max_trials_per_task=per_task,
                               num_trials_per_iter=min(64, per_task), database=database,
                               builder=ms.builder.LocalBuilder(f_build=build_kernel, timeout_sec=120))
        with target, database:           # the best record of every kernel, from the database just updated
            return relax.transform.MetaScheduleApplyDatabase()(mod)


# what TVM 0.27 makes of an int8 QDQ file: its Relax ONNX importer reads QuantizeLinear /
# DequantizeLinear, but lowers them to float arithmetic (no int8 kernels): the int8 model's
# numerics, at fp32 speed or worse (ResNet-20 here: 34.4 ms int8, 34.0 ms fp32, default schedules)
INT8_COMPUTE = "float (TVM's Relax importer dequantizes the QDQ graph: no int8 kernels)"


class TVM(LatencyBackend):
    """Apache TVM: ONNX -> Relax -> a module compiled for `target` (default
    'llvm -mcpu=native'), static batch. A cross target ('llvm -mtriple=aarch64-linux-gnu')
    gives a .tar of object files, linked on the device; with `rpc: HOST:PORT` the module
    is uploaded to TVM's RPC server there (`python -m tvm.exec.rpc_server`) and checked and
    timed on the device; without it a cross-compiled module is kept, not timed.

    int8 is the onnxruntime int8 file (static batch) imported by the Relax ONNX front end,
    which reads its QDQ nodes but computes in float: the int8 model's accuracy, not int8
    speed (each row says so: latency_tvm_int8_compute).

    Kernels get TVM's default schedules, or with `tune_trials: N` MetaSchedule's: N
    candidate kernels built and timed per model (an XGBoost cost model picks them), the
    best kept in a database that later trials and runs reuse (tuning_folder)."""
    requires = ("tvm",)
    extra = "tvm"
    suffix = ".so"
    offers_int8 = True          # the int8 QDQ file imported, its numerics checked; computed in float (INT8_COMPUTE)

    @property
    def target(self) -> str:
        return self.spec.target or "llvm -mcpu=native"

    @property
    def cross(self) -> bool:
        return "-mtriple" in self.target and "x86_64" not in self.target

    @property
    def trials(self) -> int:
        return self.spec.tune_trials or 0

    @property
    def release_tag(self) -> str:
        return f"tvm-tuned{self.trials}" if self.trials else "tvm"

    def artifact(self, files, quantized):
        size, batch = self.size(files), self.spec.batch_size
        source = files.static_int8(size, batch) if quantized else files.static_onnx(size, batch)
        return self.compile_file(source, size)

    def compile_file(self, path, input_size):
        import onnx
        import tvm
        from tvm.relax.frontend.onnx import from_onnx
        source = Path(path)
        tuned = f"-tuned{self.trials}" if self.trials else ""
        lib = source.with_suffix(f".tvm{tuned}.tar" if self.cross else f".tvm{tuned}.so")
        if lib.is_file():
            return lib
        if self.trials and self.cross:
            raise EdgepruneError("tvm: tune_trials times candidate kernels where the module runs, so it needs the "
                                 f"device's own machine kind; {self.target!r} is a cross target: tune on such a "
                                 "device, or leave tune_trials out for TVM's default schedules")
        target = tvm.target.Target(tvm_target(self.target, self.spec.threads if self.trials else None))
        try:
            mod = from_onnx(onnx.load(str(source)), shape_dict={"input": [self.spec.batch_size, 3, input_size,
                                                                          input_size]}, keep_params_in_input=False)
            if self.trials:
                mod = tune(mod, target, self.trials, tuning_folder(self.target, self.spec.threads))
            tvm.compile(mod, target=target).export_library(str(lib))
        except EdgepruneError:
            raise
        except Exception as e:  # noqa: BLE001 - TVM raises its own types
            hint = ("; export the model with a fixed batch (edgeprune deploy ... --static-batch)"
                    if "ShapeExpr" in str(e) else "")
            raise EdgepruneError(f"tvm could not compile {source.name} for {self.target!r}: "
                                 f"{type(e).__name__}: {first_line(e, 200)}{hint}") from None
        return lib

    # -- where it runs: here, or on the device through TVM's RPC ---------------------------------------------
    def _remote(self):
        from tvm import rpc
        host, _, port = self.spec.rpc.rpartition(":")
        try:
            return rpc.connect(host, int(port), session_timeout=int(self.spec.timeout))
        except Exception as e:  # noqa: BLE001
            raise EdgepruneError(f"tvm rpc {self.spec.rpc}: cannot connect ({first_line(e, 120)}); start "
                                 "`python -m tvm.exec.rpc_server --host 0.0.0.0 --port PORT` on the device") from None

    def load(self, path):
        import tvm
        from tvm import relax
        if self.spec.rpc:
            remote = self._remote()
            remote.upload(str(path))
            vm = relax.VirtualMachine(remote.load_module(Path(path).name), remote.cpu())
            return {"vm": vm, "device": remote.cpu()}
        return {"vm": relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu()), "device": tvm.cpu()}

    def predict(self, session, images):
        import tvm
        out = session["vm"]["main"](tvm.runtime.tensor(np.ascontiguousarray(images), session["device"]))
        out = out[0] if isinstance(out, (list, tuple)) or not hasattr(out, "numpy") else out
        return out.numpy()

    def time(self, files, quantized):
        if quantized and getattr(files, "int8_fixed", False):     # a QAT file: its own export, not TVM's to import
            return None
        if self.cross and not self.spec.rpc:   # compiled for another machine: kept for it, not run here
            self.artifact(files, quantized)
            return Measurement(float("nan"), float("nan"), {})
        if not self.spec.rpc:
            os.environ.setdefault("TVM_NUM_THREADS", str(self.spec.threads))
            return super().time(files, quantized)
        return self._time_remote(files)

    def _time_remote(self, files):
        """Timed on the device by TVM's time_evaluator (no network in the figures), in blocks
        until the median's confidence interval is within `ci`, as here."""
        import tvm

        from ..timing import percentile_stats
        from .checks import random_inputs
        session = self.session(self.artifact(files, False))
        vm, device, s = session["vm"], session["device"], self.spec
        vm.set_input("main", tvm.runtime.tensor(random_inputs(s.batch_size, self.size(files)), device))
        evaluate = vm.time_evaluator("invoke_stateful", device, number=1, repeat=s.repeats)
        for _ in range(s.warmup):
            vm.invoke_stateful("main")
        times: list[float] = []
        cap = max(s.repeats, s.max_repeats or s.repeats) if s.ci else s.repeats
        while len(times) < cap:
            times += [1000 * t for t in evaluate("main").results]
            if not s.ci or percentile_stats(times)["ci_rel"] <= s.ci:
                break
        return spread(times, {"repeats": len(times)})

    def assess(self, files, quantized):
        if quantized and getattr(files, "int8_fixed", False):
            return {}
        out = {"int8_compute": INT8_COMPUTE} if quantized else {}
        if self.cross and not self.spec.rpc:
            return {**out, "file_bytes": Path(self.artifact(files, quantized)).stat().st_size}
        return {**out, **super().assess(files, quantized)}

    def checks_parity(self) -> bool:
        return self.spec.batch_size == 1      # a static batch of N cannot take the images one by one
