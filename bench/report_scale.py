"""Report scale: how long `edgeprune report` takes and how big its page gets, from
one trial to 1,000, on hand-made stores (tests/fake_runs.py; nothing is trained).
With Chromium installed it also opens each page headless and times that.

    python bench/report_scale.py [--sizes 1 13 100 500 1000] [--out bench/results/report_scale.json]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
for p in (_ROOT, _ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fake_runs import MODELS, make_run  # noqa: E402

from edgeprune.report import report  # noqa: E402
from edgeprune.report.browser import check_page, find_chromium  # noqa: E402

ALGOS = ["l1", "l2", "fpgm", "random", "taylor"]


def shape_for(n: int) -> dict:
    """Models x algorithms x rates x seeds (+ a baseline per model and seed) of about n trials."""
    if n <= 1:
        return dict(models=("resnet20",), algorithms=(), rates=(), seeds=(0,))
    for seeds in (1, 2, 4):
        for m in range(1, len(MODELS) + 1):
            for a in range(1, len(ALGOS) + 1):
                per = (n / seeds - m) / (m * a)
                if 1 <= per <= 19:
                    rates = [round(0.05 * (i + 1), 2) for i in range(max(1, round(per)))]
                    return dict(models=tuple(list(MODELS)[:m]), algorithms=tuple(ALGOS[:a]), rates=tuple(rates),
                                seeds=tuple(range(seeds)))
    raise ValueError(f"no shape for {n} trials")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 13, 100, 500, 1000])
    ap.add_argument("--out", default=str(_ROOT / "bench" / "results" / "report_scale.json"))
    args = ap.parse_args()
    chromium = find_chromium()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            shape = shape_for(n)
            run = make_run(Path(tmp) / f"run{n}", failed="taylor" if "taylor" in shape["algorithms"] else None,
                           unfinished=min(5, n // 20), **shape)
            from edgeprune.store import ResultStore
            with ResultStore(run, create=False) as store:
                trials = len(store.trials())
            t0 = time.perf_counter()
            files = report(run, figures=False)
            html_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            report(run)
            full_s = time.perf_counter() - t0
            row = {"trials": trials, "models": len(shape["models"]), "algorithms": len(shape["algorithms"]),
                   "seeds": len(shape["seeds"]), "html_seconds": round(html_s, 2),
                   "html_and_figures_seconds": round(full_s, 2), "html_bytes": files[-1].stat().st_size}
            if chromium:
                t0 = time.perf_counter()
                page = check_page(files[-1])
                row.update(browser_seconds=round(time.perf_counter() - t0, 2), browser_ok=page.ok,
                           figures_drawn=f"{page.figures_drawn}/{page.figures}", table_rows=page.table_rows)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"bench": "report_scale", "date": _dt.datetime.now().isoformat(timespec="seconds"),
              "machine": platform.platform(), "python": platform.python_version(), "chromium": chromium,
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
