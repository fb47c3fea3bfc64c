"""Running sweeps: `sweep` (run or resume), `refine` (fine-tune chosen trials
further), `status` (follow one from another terminal)."""
from __future__ import annotations

import sys
import time

from ..errors import first_line
from .args import command, integer, number

# `sweep --smoke`: does the config run? Random weights, one step of 8 images per trial,
# a few hundred images, each model at its smallest input, no latency, no downloads.
SMOKE = ["dataset.train_fraction=0.004", "dataset.test_fraction=0.01", "dataset.image_size=32", "dataset.download=false",
         "finetune.max_steps=1", "finetune.batch_size=8", "finetune.adapt_epochs=0", "prune.recalibrate_bn=1",
         "measure.latency=false", "measure.eval_batch_size=100", "weights_dir=null"]


def run_sweep_command(args) -> int:
    from ..config import load_config
    from ..run import RunFolder
    from ..sweep import RichProgress, SilentProgress, run_sweep
    overrides = (SMOKE if args.smoke else []) + list(args.set)      # the user's --set wins over --smoke's
    if args.executor:
        overrides.append(f"executor={args.executor}")
    if args.address:
        overrides += ["executor=ray", f"ray.address={args.address}"]
    cfg = load_config(args.config, overrides=overrides, data_dir=args.data_dir, out=args.out,
                      plugins=args.plugin, weights_dir=args.weights_dir)
    if args.smoke:      # random weights: nothing to download, nothing to adapt
        cfg.models = [m.model_copy(update={"pretrained": False, "checkpoint": None}) for m in cfg.models]
    if cfg.search is not None and not args.smoke:     # a config with goals: searched, not swept
        from .find import run_find
        args.no_export = False
        return run_find(cfg, args)
    progress = SilentProgress() if args.quiet else RichProgress()
    run_dir = run_sweep(cfg, progress=progress, retry_failed=args.retry_failed, extend=args.extend)
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


def refine_command(args) -> int:
    from ..run import RunFolder
    from ..sweep import RichProgress, SilentProgress, refine
    ids = refine(args.run, trials=args.trials or (), top=args.top, epochs=args.epochs,
                 progress=SilentProgress() if args.quiet else RichProgress(), data_dir=args.data_dir,
                 executor=args.executor)
    failed = {t.trial_id: t.error for t in RunFolder(args.run).trials() if t.trial_id in ids and t.status != "done"}
    done = [i for i in ids if i not in failed]
    print(f"refined {len(done)} trial(s) into {args.run}: {', '.join(i[:8] for i in done) or '-'}")
    for trial_id, error in failed.items():
        print(f"edgeprune: refining {trial_id[:8]} failed: {first_line(error or 'unknown')}", file=sys.stderr)
    print(f"next: edgeprune show {args.run}   |   edgeprune recommend {args.run} ...")
    return 1 if failed else 0


def status_command(args) -> int:
    from ..sweep.status import sweep_status
    while True:
        st = sweep_status(args.run)
        print(st.line(), flush=True)
        if st.driver_alive:
            for name, seconds in st.running:
                print(f"  running: {name} ({seconds:.0f}s)")
        if not args.watch or st.over:
            return 0
        time.sleep(args.watch)


def add(sub) -> None:
    s = command(sub, "sweep", "run (or resume) a sweep from a YAML config", run_sweep_command)
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

    s = command(sub, "refine", "fine-tune chosen finished trials further (default: the accuracy-vs-MACs Pareto "
                "front), as new rows linked to them", refine_command)
    s.add_argument("run", help="run folder")
    pick = s.add_mutually_exclusive_group()
    pick.add_argument("--top", type=integer(1, 10000), help="the K most accurate trials of the Pareto front")
    pick.add_argument("--trials", nargs="+", metavar="ID", help="these trials (id prefixes)")
    s.add_argument("--epochs", type=number(0, low_open=True), default=1.0,
                   help="epochs each refinement adds (default 1)")
    s.add_argument("--executor", help="local, ray, ... (default: the run's)")
    s.add_argument("--data-dir", help="dataset root, if it moved since the sweep")
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    s = command(sub, "status", "progress of a sweep (also one running in another terminal)", status_command)
    s.add_argument("run", help="run folder")
    s.add_argument("--watch", type=number(0, low_open=True), metavar="SECONDS",
                   help="repeat every SECONDS until it ends")
