"""An `edgeprune agent` on the device: the runtime's file is uploaded and timed there
(ONNX for onnxruntime and for OpenVINO, which compiles it on the device; .tflite for
LiteRT). A TVM module is native code, which the agent never loads: for TVM on a
device, compile here with `{backend: tvm, target: 'llvm -mtriple=...'}` and run the
module with TVM's own RPC server (`python -m tvm.exec.rpc_server`)."""
from __future__ import annotations

from ...config import REMOTE
from ...errors import EdgepruneError
from ..latency import Measurement
from .base import LatencyBackend
from .litert import LiteRT

RUNTIMES = ("onnxruntime", "openvino", "litert")


class Device(LatencyBackend):
    remote = True           # timed on the device: its own CPU's int8 instructions, not this machine's

    def __init__(self, spec):
        super().__init__(spec)
        self.runtime = spec.runtime or "onnxruntime"
        if self.runtime not in RUNTIMES:
            raise EdgepruneError(f"a device runs {', '.join(RUNTIMES)}, not {self.runtime!r}"
                                 + ("; a TVM module is native code: run it with TVM's RPC server"
                                    if self.runtime == "tvm" else ""))
        from ..agent_client import AgentClient
        try:
            self.client = AgentClient(spec.device, token_env=spec.token_env, timeout=spec.timeout,
                                      busy_wait=spec.timeout, fingerprint=spec.tls_fingerprint, ca_file=spec.ca_file)
        except ValueError as e:
            raise EdgepruneError(f"measure.latency device {spec.device}: {e}") from None
        self._litert = None

    offers_int8 = True      # the int8 ONNX file (onnxruntime, OpenVINO) or the int8 .tflite (LiteRT) on the device

    @property
    def runs_int8_onnx(self) -> bool:
        return self.runtime == "onnxruntime"

    def artifact(self, files, quantized):
        if self.runtime == "litert":
            self._litert = self._litert or LiteRT.__new__(LiteRT)
            self._litert.spec, self._litert._sessions, self._litert._references = self.spec, {}, {}
            return self._litert.artifact(files, quantized)
        return super().artifact(files, quantized)

    def assess(self, files, quantized):
        path = self.artifact(files, quantized)
        return {"file_bytes": path.stat().st_size}       # accuracy and parity: in this machine's backends

    def time(self, files, quantized):
        s = self.spec
        r = self.client.benchmark(self.artifact(files, quantized), threads=s.threads, warmup=s.warmup,
                                  repeats=s.repeats, batch_size=s.batch_size, runtime=self.runtime,
                                  max_repeats=s.max_repeats if s.ci else None, rel_ci=s.ci)
        info = r.get("device", {})
        extra = {k: r[k] for k in ("ci_rel", "iqr_ms", "ci_low_ms", "ci_high_ms", "repeats") if k in r}
        return Measurement(r["median_ms"], r["p90_ms"], {**extra, "runtime": self.runtime,
                                                         "device": device_summary(info), "info": info,
                                                         "cpu_int8": info.get("cpu_int8") or "unknown"})


def device_summary(info: dict) -> str:
    board = info.get("board") or info.get("hostname") or "device"
    return (f"{board}: {info.get('cpu', '?')} x{info.get('cores', '?')}, "
            f"onnxruntime {info.get('onnxruntime', '?')}")
