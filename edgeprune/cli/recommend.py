"""`recommend`: the best finished trials that fit a budget, and --export the chosen one.
Its budget options are made from recommend.CONSTRAINTS, the one table of them."""
from __future__ import annotations

import json
import shutil
import sys

from .args import command, integer


def recommend_command(args) -> int:
    from ..recommend import CONSTRAINTS, recommend
    budgets = {key: b.parse(getattr(args, key), b.flag) for key, b in CONSTRAINTS.items()
               if getattr(args, key) is not None}
    rec = recommend(args.runs, **budgets, objective=args.objective, top=args.top,
                    include_baseline=not args.pruned_only, models=args.model or None,
                    algorithms=args.algorithm or None, all_budgets=args.all_budgets)
    rec.exported = bool(args.export)
    if args.json:
        print(json.dumps(rec.to_dict(), indent=1))
    else:
        sys.stdout.write(rec.format(shutil.get_terminal_size((100, 24)).columns, wide=args.wide))
    if rec.best is None:
        return 1
    if args.export:
        from ..release import EXPORT_FORMATS, release_trial
        best = rec.best
        result = release_trial(best["run_path"], best["trial_id"], args.export, EXPORT_FORMATS, data_dir=args.data_dir)
        print(f"exported trial {best['trial_id'][:8]} to {result.out_dir}: "
              + ", ".join(f.name for f in result.files.values()), file=sys.stderr)
        for problem in result.problems:
            print(f"warning: {problem}", file=sys.stderr)
    return 0


def add(sub) -> None:
    from ..recommend import CONSTRAINTS, OBJECTIVES
    s = command(sub, "recommend", "the best finished trials that fit a budget; --export the chosen model",
                recommend_command)
    s.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s)")
    for key, b in CONSTRAINTS.items():
        s.add_argument(b.flag, dest=key, metavar=b.metavar, help=b.help)
    s.add_argument("--objective", default="accuracy", choices=list(OBJECTIVES),
                   help="rank the trials that fit by this (default: accuracy)")
    s.add_argument("--top", type=integer(1, 100000), default=5, help="how many to list (default 5)")
    s.add_argument("--model", action="append", help="only this model (repeatable)")
    s.add_argument("--algorithm", action="append", help="only this algorithm (repeatable)")
    s.add_argument("--pruned-only", action="store_true", help="leave the unpruned baselines out")
    s.add_argument("--all-budgets", action="store_true",
                   help="rank screened trials beside their refinements (default: each by its best budget)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--wide", action="store_true", help="every column, whatever the terminal's width")
    s.add_argument("--export", metavar="DIR", help="write the best trial's model (torch.export, TorchScript, "
                   "edgeprune, state dict) and model card")
    s.add_argument("--data-dir", help="dataset root, when --export has to rebuild the model elsewhere")
