"""The `edgeprune` command: a thin layer over the Python API."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .errors import EdgepruneError, RunError, first_line


def _cmd_sweep(args) -> int:
    from .config import load_config
    from .sweep import RichProgress, SilentProgress, run_sweep
    overrides = (SMOKE if args.smoke else []) + list(args.set)      # the user's --set wins over --smoke's
    if args.executor:
        overrides.append(f"executor={args.executor}")
    if args.address:
        overrides += ["executor=ray", f"ray.address={args.address}"]
    cfg = load_config(args.config, overrides=overrides, data_dir=args.data_dir, out=args.out,
                      plugins=args.plugin, weights_dir=args.weights_dir)
    if args.smoke:      # random weights: nothing to download, nothing to adapt
        cfg.models = [m.model_copy(update={"pretrained": False, "checkpoint": None}) for m in cfg.models]
    progress = SilentProgress() if args.quiet else RichProgress()
    run_dir = run_sweep(cfg, progress=progress, retry_failed=args.retry_failed, extend=args.extend)
    from .run import RunFolder
    with RunFolder(run_dir).store() as store:
        counts = store.counts()
        failed = store.trials("failed")
        warned = [t for t in store.trials("done") if t.metrics.get("warning")]
    print(f"run folder: {run_dir}  ({counts['done']} done, {counts['failed']} failed)")
    print(f"next: edgeprune show {run_dir}   |   edgeprune report {run_dir}")
    if warned:
        print(f"edgeprune: warning: {len(warned)} trial(s) say so in `show`, the first: {warned[0].model}: "
              f"{warned[0].metrics['warning']}", file=sys.stderr)
    if failed:
        print(f"edgeprune: {len(failed)} trial(s) failed, the first: {failed[0].model} {failed[0].algorithm} "
              f"{failed[0].rate:g}: {failed[0].error} (`edgeprune show {run_dir}` lists them; --retry-failed "
              "runs them again)", file=sys.stderr)
        return 1
    return 0


# `sweep --smoke`: does the config run? Random weights, one step of 8 images per trial,
# a few hundred images, each model at its smallest input, no latency, no downloads.
SMOKE = ["dataset.train_fraction=0.004", "dataset.test_fraction=0.01", "dataset.image_size=32", "dataset.download=false",
         "finetune.max_steps=1", "finetune.batch_size=8", "finetune.adapt_epochs=0", "prune.recalibrate_bn=1",
         "measure.latency=false", "measure.eval_batch_size=100", "weights_dir=null"]


def _cmd_status(args) -> int:
    import time as _time
    from .sweep.status import sweep_status
    if args.watch is not None and not args.watch > 0:
        raise EdgepruneError(f"--watch {args.watch:g}: give the seconds between checks, more than 0")
    while True:
        st = sweep_status(args.run)
        print(st.line(), flush=True)
        if st.driver_alive:
            for name, seconds in st.running:
                print(f"  running: {name} ({seconds:.0f}s)")
        if not args.watch or st.over:
            return 0
        _time.sleep(args.watch)


def _cmd_show(args) -> int:
    from .report import print_trials
    from .run import RunFolder
    with RunFolder(args.run).store() as store:
        trials = store.trials(args.status)
        counts = store.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print_trials(trials, title=f"{args.run}: {summary or 'no trials'}", wide=args.wide)
    return 0


def _cmd_export(args) -> int:
    if args.mlflow is not None:
        from .tracking import export_mlflow
        r = export_mlflow(args.run, args.mlflow or None, experiment=args.experiment)
        print(f"MLflow {r.uri}: experiment {r.experiment_id}, sweep run {r.parent_run_id}: {r.created} trial run(s) "
              f"logged, {r.updated} updated, {r.unchanged} already final")
        return 0
    from .results import load_results
    df = load_results(args.run)
    text = df.to_json(orient="records", indent=1) if args.json else df.to_csv(index=False)
    if args.output:
        from pathlib import Path
        out = Path(args.output)
        if out.is_dir():
            raise EdgepruneError(f"-o {args.output!r} is a folder; name the file to write")
        if not out.parent.is_dir():
            raise EdgepruneError(f"-o {args.output!r}: folder {str(out.parent)!r} does not exist; create it first")
        with open(out, "w") as f:
            f.write(text)
        print(f"wrote {len(df)} trials to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _integer(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi] (argparse names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({lo}..{hi})")
        return value
    return parse


def _folder_for(path: Optional[str], what: str) -> None:
    """An output folder may exist or not, but it may not be a file."""
    from pathlib import Path
    if path and Path(path).exists() and not Path(path).is_dir():
        raise EdgepruneError(f"{what} {path!r} is a file; name a folder (it is created if missing)")


def _print_report(files) -> None:
    for f in files:
        print(f)


def _cmd_report(args) -> int:
    from .report import report, watch_report
    _folder_for(args.out, "--out")
    out = args.out or f"{args.run}/report"
    if args.watch:
        files = watch_report([args.run], out, interval=args.interval, on_write=_print_report)
    else:
        files = report(args.run, args.out)
        _print_report(files)
    if len(files) <= 1:
        print(f"{args.run}: no finished trials to draw yet; the page lists the planned trials", file=sys.stderr)
    return 0


def _cmd_compare(args) -> int:
    from .report import DEFAULT_COMPARE_DIR, compare, watch_report
    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    _folder_for(args.out, "--out")
    if args.watch:
        watch_report(args.runs, args.out or DEFAULT_COMPARE_DIR, labels, interval=args.interval,
                     on_write=_print_report)
    else:
        _print_report(compare(args.runs, args.out, labels))
    return 0


def _cmd_recommend(args) -> int:
    import json

    import shutil

    from .recommend import recommend
    from .units import parse_count, parse_fraction, parse_ms, parse_points, parse_size
    rec = recommend(
        args.runs,
        max_latency_ms=None if args.max_latency_ms is None else parse_ms(args.max_latency_ms, "--max-latency-ms"),
        max_params=None if args.max_params is None else parse_count(args.max_params, "--max-params"),
        max_macs=None if args.max_macs is None else parse_count(args.max_macs, "--max-macs"),
        max_size_bytes=None if args.max_size is None else parse_size(args.max_size, "--max-size"),
        min_accuracy=None if args.min_accuracy is None else parse_fraction(args.min_accuracy, "--min-accuracy"),
        max_accuracy_drop=None if args.max_accuracy_drop is None else parse_points(args.max_accuracy_drop,
                                                                                   "--max-accuracy-drop"),
        objective=args.objective, top=args.top, include_baseline=not args.pruned_only,
        models=args.model or None, algorithms=args.algorithm or None, all_budgets=args.all_budgets)
    rec.exported = bool(args.export)
    if args.json:
        print(json.dumps(rec.to_dict(), indent=1))
    else:
        sys.stdout.write(rec.format(shutil.get_terminal_size((100, 24)).columns, wide=args.wide))
    if rec.best is None:
        return 1
    if args.export:
        from .release import EXPORT_FORMATS, release_trial
        best = rec.best
        result = release_trial(best["run_path"], best["trial_id"], args.export, EXPORT_FORMATS,
                               data_dir=args.data_dir)
        print(f"exported trial {best['trial_id'][:8]} to {result.out_dir}: "
              + ", ".join(f.name for f in result.files.values()), file=sys.stderr)
        for problem in result.problems:
            print(f"warning: {problem}", file=sys.stderr)
    return 0


def _cmd_refine(args) -> int:
    from .sweep import RichProgress, SilentProgress, refine
    ids = refine(args.run, trials=args.trials or (), top=args.top, epochs=args.epochs,
                 progress=SilentProgress() if args.quiet else RichProgress(), data_dir=args.data_dir,
                 executor=args.executor)
    from .run import RunFolder
    failed = {t.trial_id: t.error for t in RunFolder(args.run).trials() if t.trial_id in ids and t.status != "done"}
    done = [i for i in ids if i not in failed]
    print(f"refined {len(done)} trial(s) into {args.run}: {', '.join(i[:8] for i in done) or '-'}")
    for trial_id, error in failed.items():
        print(f"edgeprune: refining {trial_id[:8]} failed: {first_line(error or 'unknown')}", file=sys.stderr)
    print(f"next: edgeprune show {args.run}   |   edgeprune recommend {args.run} ...")
    return 1 if failed else 0


def _cmd_models(args) -> int:
    from .models import list_models
    from .registry import MODELS
    families = sorted({e.family for _, e in MODELS.items()})
    if args.family and args.family not in families:
        raise EdgepruneError(f"unknown family {args.family!r}; choose from: {', '.join(families)}")
    for name in list_models(args.family):
        print(name)
    return 0


def _cmd_algorithms(args) -> int:
    from .registry import ALGORITHMS
    for name, a in ALGORITHMS.items():
        print(f"{name:16s} {'structured' if a.structured else 'unstructured':12s} {a.description}")
    return 0


def _cmd_deploy(args) -> int:
    from .release import release_trial
    formats = [f for f in ("onnx", "int8", "torchscript", "pt2") if getattr(args, f)] or ["onnx"]
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
            print(f"int8: {result.files['int8']} ({check['size_bytes'] / 1e6:.2f} MB, "
                  f"{check['size_bytes'] / check['fp32_size_bytes']:.2f}x the fp32 file, calibrated on "
                  f"{check['calibration_images']} training images{acc})")
        else:
            diff = check.get("max_abs_diff")
            print(f"{kind}: {result.files[kind]}" + ("" if diff is None else f" (max |diff| {diff:.2e})"))
    for problem in result.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"manifest: {result.files['manifest']}\nmodel card: {result.files['card']}")
    return 0


def _cmd_agent(args) -> int:
    from .agent.main import run
    return run(args)


def _time_here(args) -> dict:
    """`edgeprune latency MODEL [--backend B]` on this machine."""
    from pathlib import Path

    import numpy as np

    from .agent.bench import device_info
    from .measure.timing import percentile_stats, time_calls
    from .config import MeasureConfig
    from .registry import LATENCY_BACKENDS
    name = args.backend or "onnxruntime"
    if name not in LATENCY_BACKENDS or name in ("device", "torch"):
        raise EdgepruneError(f"--backend {name!r}: time a file in onnxruntime, openvino, tvm or litert here "
                             "(or --device URL)")
    spec = MeasureConfig(latency=[{"backend": name}], latency_threads=args.threads).latency_backends()[0]
    backend = LATENCY_BACKENDS.get(name)(spec)
    shape = _input_shape(Path(args.model), args.batch_size)
    try:
        session = backend.load(backend.compile_file(Path(args.model), shape[-1]))
    except EdgepruneError:
        raise
    except Exception as e:  # noqa: BLE001 - each runtime raises its own types
        raise EdgepruneError(f"{args.model}: {name} cannot load it: {type(e).__name__}: {e}") from None
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times, info = time_calls(lambda: backend.call(session, x), warmup=args.warmup, repeats=args.repeats,
                             max_repeats=args.max_repeats, rel_ci=args.ci)
    return {**percentile_stats(times), **info, "threads": args.threads, "batch_size": args.batch_size,
            "backend": name, "device": device_info()}


def _input_shape(path, batch: int) -> list[int]:
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter
        return [int(d) for d in Interpreter(model_path=str(path)).get_input_details()[0]["shape"]]
    import onnx
    try:
        dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    except Exception as e:  # noqa: BLE001
        raise EdgepruneError(f"{path} is not an ONNX file ({type(e).__name__}); give an ONNX (or .tflite) "
                             "model") from None
    return [batch if i == 0 or not d.dim_value else d.dim_value for i, d in enumerate(dims)]


def _cmd_latency(args) -> int:
    import json
    from pathlib import Path
    if not Path(args.model).is_file():
        raise EdgepruneError(f"model {args.model!r} not found; give the path of an ONNX file")
    if args.device:
        from .deploy.remote import AgentClient, AgentError
        try:
            client = AgentClient(args.device, timeout=args.timeout)
        except ValueError as e:
            raise EdgepruneError(f"--device: {e}") from None
        try:
            r = client.benchmark(
                args.model, threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                batch_size=args.batch_size, runtime=args.backend or "onnxruntime")
        except AgentError as e:       # refused (token, model, limits): fix the input (2); no answer, 5xx: a failed run (1)
            raise (EdgepruneError if 400 <= e.status < 500 else RunError)(str(e)) from None
    else:
        r = _time_here(args)
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        dev = r.get("device", {})
        ci = f" (95 % CI +/-{100 * r['ci_rel']:.1f} %)" if "ci_rel" in r else ""
        print(f"{args.model}: median {r['median_ms']:.3f} ms{ci}, p90 {r['p90_ms']:.3f} ms over {r['repeats']} runs "
              f"({r['threads']} thread(s), batch {r['batch_size']}, {r.get('backend') or r.get('runtime', 'onnxruntime')})"
              f" on {dev.get('cpu', '?')} [{dev.get('hostname', '')}]")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeprune", description="Prune, fine-tune, measure and compare CNNs "
                                "for edge devices.")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first: it registers criteria, pruners, models, ... (repeatable)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sweep", help="run (or resume) a sweep from a YAML config")
    s.add_argument("config", help="sweep config (YAML)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set finetune.epochs=3 (repeatable)")
    s.add_argument("--data-dir", help="dataset root (overrides dataset.root)")
    s.add_argument("--weights-dir", help="folder of published weight files, for pretrained: true offline")
    s.add_argument("--out", help="run folder (overrides out)")
    s.add_argument("--executor", help="overrides executor (local, ray, or a plugin's)")
    s.add_argument("--address", help="run on this Ray cluster (implies --executor ray; else $RAY_ADDRESS)")
    s.add_argument("--retry-failed", action="store_true", help="also rerun trials that failed before")
    s.add_argument("--smoke", action="store_true",
                   help="check that the config runs: random weights, one tiny step per trial, no latency")
    s.add_argument("--extend", action="store_true",
                   help="let an existing run folder take the config's new models, algorithms or rates")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_cmd_sweep)

    s = sub.add_parser("refine", help="fine-tune chosen finished trials further (default: the accuracy-vs-MACs "
                       "Pareto front), as new rows linked to them")
    s.add_argument("run", help="run folder")
    pick = s.add_mutually_exclusive_group()
    pick.add_argument("--top", type=_integer(1, 10000), help="the K most accurate trials of the Pareto front")
    pick.add_argument("--trials", nargs="+", metavar="ID", help="these trials (id prefixes)")
    s.add_argument("--epochs", type=float, default=1.0, help="epochs each refinement adds (default 1)")
    s.add_argument("--executor", help="local, ray, ... (default: the run's)")
    s.add_argument("--data-dir", help="dataset root, if it moved since the sweep")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_cmd_refine)

    s = sub.add_parser("status", help="progress of a sweep (also one running in another terminal)")
    s.add_argument("run", help="run folder")
    s.add_argument("--watch", type=float, metavar="SECONDS", help="repeat every SECONDS until it ends")
    s.set_defaults(fn=_cmd_status)

    s = sub.add_parser("show", help="print the trials of a run as a table")
    s.add_argument("run", help="run folder")
    s.add_argument("--status", choices=["pending", "running", "done", "failed", "cancelled"])
    s.add_argument("--wide", action="store_true", help="every column, whatever the terminal's width")
    s.set_defaults(fn=_cmd_show)

    s = sub.add_parser("export", help="write the trials of a run as CSV (default) or JSON")
    s.add_argument("run", help="run folder")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV (the default)")
    fmt.add_argument("--json", action="store_true", help="JSON records")
    s.add_argument("-o", "--output", help="file to write (default: standard output)")
    s.add_argument("--mlflow", nargs="?", const="", metavar="TRACKING_URI",
                   help="log every trial to MLflow instead (default URI: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///mlflow.db); again later updates, never duplicates")
    s.add_argument("--experiment", help="MLflow experiment (default: the sweep's name)")
    s.set_defaults(fn=_cmd_export)

    s = sub.add_parser("report", help="write the HTML report of a run (report.html) and its PNG/SVG figures")
    s.add_argument("run", help="run folder")
    s.add_argument("--out", help="folder for the report (default: RUN/report)")
    s.add_argument("--watch", action="store_true",
                   help="keep regenerating it while the sweep runs (reload the page to see new trials)")
    s.add_argument("--interval", type=float, default=30.0, metavar="S", help="seconds between checks with --watch")
    s.set_defaults(fn=_cmd_report)

    s = sub.add_parser("compare", help="one report with several runs overlaid (e.g. two fine-tune budgets)")
    s.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    s.add_argument("--labels", help="comma-separated names for the runs (default: their folder names)")
    s.add_argument("--out", help="folder for the report (default: ./compare-report)")
    s.add_argument("--watch", action="store_true", help="keep regenerating it while sweeps run")
    s.add_argument("--interval", type=float, default=30.0, metavar="S", help="seconds between checks with --watch")
    s.set_defaults(fn=_cmd_compare)

    s = sub.add_parser("recommend", help="the best finished trials that fit a budget; --export the chosen model")
    s.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s)")
    s.add_argument("--max-latency-ms", metavar="MS", help="median latency on the run's first latency backend, e.g. 5")
    s.add_argument("--max-params", metavar="N", help="parameters, e.g. 1e6 or 250k")
    s.add_argument("--max-macs", metavar="N", help="MACs per image, e.g. 20M")
    s.add_argument("--max-size", metavar="BYTES", help="size of the weights, e.g. 500KB, 2MiB or bytes")
    s.add_argument("--min-accuracy", metavar="ACC", help="top-1 accuracy, a fraction (0.9) or 90%%")
    s.add_argument("--max-accuracy-drop", metavar="DROP",
                   help="accuracy lost against the model's baseline trial, in points: 1 (or 1pt) is one point")
    s.add_argument("--objective", default="accuracy",
                   choices=["accuracy", "accuracy_drop", "latency", "params", "macs", "size"],
                   help="rank the trials that fit by this (default: accuracy)")
    s.add_argument("--top", type=_integer(1, 100000), default=5, help="how many to list (default 5)")
    s.add_argument("--model", action="append", help="only this model (repeatable)")
    s.add_argument("--algorithm", action="append", help="only this algorithm (repeatable)")
    s.add_argument("--pruned-only", action="store_true", help="leave the unpruned baselines out")
    s.add_argument("--all-budgets", action="store_true",
                   help="rank screened trials beside their refinements (default: each by its best budget)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--wide", action="store_true", help="every column, whatever the terminal's width")
    s.add_argument("--export", metavar="DIR",
                   help="write the best trial's model (torch.export, TorchScript, edgeprune, state dict) and "
                        "model card")
    s.add_argument("--data-dir", help="dataset root, when --export has to rebuild the model elsewhere")
    s.set_defaults(fn=_cmd_recommend)

    s = sub.add_parser("deploy", help="export a trial's model to verified ONNX / int8 ONNX / TorchScript files")
    s.add_argument("run", help="run folder")
    s.add_argument("trial", help="trial id (a unique prefix will do; `edgeprune show` lists them)")
    s.add_argument("--onnx", action="store_true", help="fp32 ONNX (the default when no format is named)")
    s.add_argument("--int8", action="store_true", help="also int8 ONNX (onnxruntime static quantization)")
    s.add_argument("--torchscript", action="store_true", help="TorchScript (torch.jit.trace)")
    s.add_argument("--pt2", action="store_true", help="torch.export program (model.pt2)")
    s.add_argument("--backend", action="append", metavar="RUNTIME",
                   help="also the runtime's own file, verified in it: openvino (IR), tvm (a compiled module), "
                        "litert (.tflite); repeatable")
    s.add_argument("--target", help="tvm: the compiler target, e.g. 'llvm -mtriple=aarch64-linux-gnu' (default: "
                   "the run's, else 'llvm -mcpu=native')")
    s.add_argument("--tune-trials", type=_integer(1, 1_000_000), metavar="N",
                   help="tvm: MetaSchedule tuning, N candidate kernels timed (default: the run's, else none)")
    s.add_argument("-o", "--output", help="folder for the files (default: RUN/deploy/TRIAL)")
    s.add_argument("--opset", type=_integer(9, 23), help="ONNX opset, 9..23 (default: the run's deploy.opset)")
    s.add_argument("--dynamic-batch", dest="dynamic_batch", action="store_true", default=None,
                   help="dynamic batch axis (default: the run's deploy.dynamic_batch)")
    s.add_argument("--static-batch", dest="dynamic_batch", action="store_false", help="batch fixed at 1")
    s.add_argument("--data-dir", help="dataset root, if it moved since the sweep")
    s.set_defaults(fn=_cmd_deploy)

    from .agent.main import add_arguments
    s = sub.add_parser("agent", help="serve latency benchmarks on this device (token from "
                       "$EDGEPRUNE_AGENT_TOKEN); needs onnxruntime, not torch")
    add_arguments(s)
    s.set_defaults(fn=_cmd_agent)

    s = sub.add_parser("latency", help="time a model file in a runtime here (onnxruntime, openvino, tvm, litert), "
                       "or on a device's agent")
    s.add_argument("model", help="ONNX file")
    s.add_argument("--device", help="URL of an `edgeprune agent` (token from $EDGEPRUNE_AGENT_TOKEN)")
    s.add_argument("--threads", type=_integer(1, 256), default=1)
    s.add_argument("--warmup", type=_integer(0, 1000), default=3)
    s.add_argument("--repeats", type=_integer(1, 10000), default=20)
    s.add_argument("--batch-size", type=_integer(1, 4096), default=1)
    s.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the agent")
    s.add_argument("--backend", help="onnxruntime (default), openvino, tvm or litert (a .tflite file)")
    s.add_argument("--ci", type=float, default=0.03, help="repeat until the median's 95%% CI is within this "
                   "fraction (default 0.03; 0 for exactly --repeats)")
    s.add_argument("--max-repeats", type=_integer(1, 1000000), default=300, help="the cap of those repeats")
    s.add_argument("--json", action="store_true", help="all statistics as JSON")
    s.set_defaults(fn=_cmd_latency)

    s = sub.add_parser("models", help="list the model names create_model knows")
    s.add_argument("--family", help="only this family (torchvision, cifar_resnet, cifar_vgg, a plugin's)")
    s.set_defaults(fn=_cmd_models)

    s = sub.add_parser("algorithms", help="list the pruning algorithms")
    s.set_defaults(fn=_cmd_algorithms)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit codes: 0 done, 1 the run could not go on (or trials failed), 2 bad input,
    130 interrupted. Every failure is one line on stderr."""
    import os
    args = build_parser().parse_args(argv)
    try:
        if args.plugin:
            from .registry import load_plugins
            load_plugins(args.plugin)
        return args.fn(args)
    except RunError as e:
        print(f"edgeprune: error: {e}", file=sys.stderr)
        return 1
    except EdgepruneError as e:
        print(f"edgeprune: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeprune: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug of ours, or of a plugin: still one line
        if os.environ.get("EDGEPRUNE_DEBUG"):
            raise
        from .errors import describe_error
        print(f"edgeprune: unexpected error: {describe_error(e)}; set EDGEPRUNE_DEBUG=1 for the traceback, and "
              "please report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
