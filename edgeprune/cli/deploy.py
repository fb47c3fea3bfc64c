"""`deploy`: a trial's model as verified files (ONNX, int8, TorchScript, torch.export,
a runtime's own file) with deploy.json and a model card."""
from __future__ import annotations

import sys

from ..errors import EdgepruneError
from .args import command, integer

# the flags that name a format (`--backend RUNTIME` names the runtimes')
FORMAT_FLAGS = {"onnx": "fp32 ONNX (the default when no format is named)",
                "int8": "also int8 ONNX (onnxruntime static quantization)",
                "torchscript": "TorchScript (torch.jit.trace)", "pt2": "torch.export program (model.pt2)"}


def deploy_command(args) -> int:
    from ..release import RUNTIMES, release_trial
    formats = [f for f in FORMAT_FLAGS if getattr(args, f)] or ["onnx"]
    for b in args.backend or []:
        if b not in RUNTIMES:
            raise EdgepruneError(f"--backend {b!r}: a runtime's own file is made for {', '.join(RUNTIMES)}")
    formats += [b for b in args.backend or [] if b not in formats]
    if (args.target or args.tune_trials) and "tvm" not in formats:
        raise EdgepruneError("--target and --tune-trials are TVM's: add --backend tvm")
    result = release_trial(args.run, args.trial, args.output, formats, data_dir=args.data_dir, opset=args.opset,
                           dynamic_batch=args.dynamic_batch,
                           backend_options={"target": args.target, "tune_trials": args.tune_trials})
    for kind, check in result.checks.items():
        if kind == "int8":
            acc = "" if result.int8_accuracy is None else \
                f", test accuracy {100 * result.int8_accuracy:.2f}% (onnxruntime)"
            how = ("made by quantization-aware fine-tuning" if check.get("method") == "qat" else
                   f"calibrated on {check['calibration_images']} training images")
            print(f"int8: {result.files['int8']} ({check['size_bytes'] / 1e6:.2f} MB, "
                  f"{check['size_bytes'] / check['fp32_size_bytes']:.2f}x the fp32 file, {how}{acc})")
        else:
            diff = check.get("max_abs_diff")
            print(f"{kind}: {result.files[kind]}" + ("" if diff is None else f" (max |diff| {diff:.2e})"))
    for problem in result.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"manifest: {result.files['manifest']}\nmodel card: {result.files['card']}")
    return 0


def add(sub) -> None:
    s = command(sub, "deploy", "export a trial's model to verified ONNX / int8 ONNX / TorchScript files",
                deploy_command)
    s.add_argument("run", help="run folder")
    s.add_argument("trial", help="trial id (a unique prefix will do; `edgeprune show` lists them)")
    for name, text in FORMAT_FLAGS.items():
        s.add_argument(f"--{name}", action="store_true", help=text)
    s.add_argument("--backend", action="append", metavar="RUNTIME",
                   help="also the runtime's own file, verified in it: openvino (IR), tvm (a compiled module), "
                        "litert (.tflite); repeatable")
    s.add_argument("--target", help="tvm: the compiler target, e.g. 'llvm -mtriple=aarch64-linux-gnu' (default: "
                   "the run's, else 'llvm -mcpu=native')")
    s.add_argument("--tune-trials", type=integer(1, 1_000_000), metavar="N",
                   help="tvm: MetaSchedule tuning, N candidate kernels timed (default: the run's, else none)")
    s.add_argument("-o", "--output", help="folder for the files (default: RUN/deploy/TRIAL)")
    s.add_argument("--opset", type=integer(9, 23), help="ONNX opset, 9..23 (default: the run's deploy.opset)")
    s.add_argument("--dynamic-batch", dest="dynamic_batch", action="store_true", default=None,
                   help="dynamic batch axis (default: the run's deploy.dynamic_batch)")
    s.add_argument("--static-batch", dest="dynamic_batch", action="store_false", help="batch fixed at 1")
    s.add_argument("--data-dir", help="dataset root, if it moved since the sweep")
