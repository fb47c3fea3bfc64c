"""`edgeprune find`: the most accurate model that meets a device budget, searched in
stages (edgeprune.search)."""
from __future__ import annotations

from .args import command


def _load(args):
    from ..config import load_config
    overrides = list(args.set)
    if args.executor:
        overrides.append(f"executor={args.executor}")
    if args.address:
        overrides += ["executor=ray", f"ray.address={args.address}"]
    return load_config(args.config, overrides=overrides, data_dir=args.data_dir, out=args.out,
                       plugins=args.plugin, weights_dir=args.weights_dir)


def run_find(cfg, args) -> int:
    from ..search import find
    from ..sweep import RichProgress, SilentProgress
    result = find(cfg, progress=SilentProgress() if args.quiet else RichProgress(), retry_failed=args.retry_failed,
                  export=not args.no_export)
    print(result.format(), end="")
    print(f"next: edgeprune report {result.run_dir}   |   edgeprune show {result.run_dir}")
    return 0 if result.winner is not None else 1


def find_command(args) -> int:
    return run_find(_load(args), args)


def add(sub) -> None:
    s = command(sub, "find", "search the config's candidates for the best model that meets its `search:` goals "
                "(screen, then rungs of fine-tuning), and export it", find_command)
    s.add_argument("config", help="config (YAML) with a `search:` section")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set search.budget.steps=2000 (repeatable)")
    s.add_argument("--data-dir", help="dataset root (overrides dataset.root)")
    s.add_argument("--weights-dir", help="folder of published weight files, for pretrained: true offline")
    s.add_argument("--out", help="run folder (overrides out)")
    s.add_argument("--executor", help="overrides executor (local, ray, or a plugin's)")
    s.add_argument("--address", help="run on this Ray cluster (implies --executor ray; else $RAY_ADDRESS)")
    s.add_argument("--retry-failed", action="store_true", help="also rerun trials that failed before")
    s.add_argument("--no-export", action="store_true", help="do not write the winner's deploy files")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
