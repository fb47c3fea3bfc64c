"""Reading a run: `show` (a table), `export` (CSV, JSON or MLflow), `report` (the
HTML page and figures), `compare` (several runs in one report)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import EdgepruneError
from .args import command, folder_for, number, print_paths


def show_command(args) -> int:
    from ..report import print_trials
    from ..run import RunFolder
    with RunFolder(args.run).store() as store:
        trials = store.trials(args.status)
        counts = store.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print_trials(trials, title=f"{args.run}: {summary or 'no trials'}", wide=args.wide)
    return 0


def export_command(args) -> int:
    if args.mlflow is not None:
        from ..tracking import export_mlflow
        r = export_mlflow(args.run, args.mlflow or None, experiment=args.experiment)
        print(f"MLflow {r.uri}: experiment {r.experiment_id}, sweep run {r.parent_run_id}: {r.created} trial run(s) "
              f"logged, {r.updated} updated, {r.unchanged} already final")
        return 0
    from ..results import load_results
    df = load_results(args.run)
    text = df.to_json(orient="records", indent=1) if args.json else df.to_csv(index=False)
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if out.is_dir():
        raise EdgepruneError(f"-o {args.output!r} is a folder; name the file to write")
    if not out.parent.is_dir():
        raise EdgepruneError(f"-o {args.output!r}: folder {str(out.parent)!r} does not exist; create it first")
    out.write_text(text)
    print(f"wrote {len(df)} trials to {args.output}", file=sys.stderr)
    return 0


def report_command(args) -> int:
    from ..report import report, watch_report
    folder_for(args.out, "--out")
    out = args.out or f"{args.run}/report"
    if args.watch:
        files = watch_report([args.run], out, interval=args.interval, on_write=print_paths)
    else:
        files = report(args.run, args.out)
        print_paths(files)
    if len(files) <= 1:
        print(f"{args.run}: no finished trials to draw yet; the page lists the planned trials", file=sys.stderr)
    return 0


def compare_command(args) -> int:
    from ..report import DEFAULT_COMPARE_DIR, compare, watch_report
    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    folder_for(args.out, "--out")
    if args.watch:
        watch_report(args.runs, args.out or DEFAULT_COMPARE_DIR, labels, interval=args.interval, on_write=print_paths)
    else:
        print_paths(compare(args.runs, args.out, labels))
    return 0


def add(sub) -> None:
    s = command(sub, "show", "print the trials of a run as a table", show_command)
    s.add_argument("run", help="run folder")
    s.add_argument("--status", choices=["pending", "running", "done", "failed", "cancelled"])
    s.add_argument("--wide", action="store_true", help="every column, whatever the terminal's width")

    s = command(sub, "export", "write the trials of a run as CSV (default) or JSON", export_command)
    s.add_argument("run", help="run folder")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV (the default)")
    fmt.add_argument("--json", action="store_true", help="JSON records")
    s.add_argument("-o", "--output", help="file to write (default: standard output)")
    s.add_argument("--mlflow", nargs="?", const="", metavar="TRACKING_URI",
                   help="log every trial to MLflow instead (default URI: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///mlflow.db); again later updates, never duplicates")
    s.add_argument("--experiment", help="MLflow experiment (default: the sweep's name)")

    s = command(sub, "report", "write the HTML report of a run (report.html) and its PNG/SVG figures", report_command)
    s.add_argument("run", help="run folder")
    s.add_argument("--out", help="folder for the report (default: RUN/report)")
    s.add_argument("--watch", action="store_true",
                   help="keep regenerating it while the sweep runs (reload the page to see new trials)")
    s.add_argument("--interval", type=number(0, low_open=True), default=30.0, metavar="S",
                   help="seconds between checks with --watch")

    s = command(sub, "compare", "one report with several runs overlaid (e.g. two fine-tune budgets)",
                compare_command)
    s.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    s.add_argument("--labels", help="comma-separated names for the runs (default: their folder names)")
    s.add_argument("--out", help="folder for the report (default: ./compare-report)")
    s.add_argument("--watch", action="store_true", help="keep regenerating it while sweeps run")
    s.add_argument("--interval", type=number(0, low_open=True), default=30.0, metavar="S",
                   help="seconds between checks with --watch")
