"""The GPU run's summary: what ran, how each step ended and how long it took, each test's
outcome, and the versions that ran it. Written by run.sh as summary-CARD.json.

    python3 bench/gpu/summary.py WORK_DIR OUT_JSON --card CARD --budget 420 --wall 390 [--dry-run]

WORK_DIR holds steps.tsv (name, status, seconds, detail per line), preflight.json and,
when the tests ran, junit.xml. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def tests(junit: Path) -> list[dict]:
    if not junit.is_file():
        return []
    out = []
    for case in ET.parse(junit).iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                text = (node.get("message") or node.text or "").strip()
                message = text.splitlines()[0][:300] if text else ""
                break
        out.append({"test": case.get("name"), "outcome": outcome, "seconds": round(float(case.get("time", 0)), 1),
                    "message": message})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("work", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--card", required=True)
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--wall", type=int, required=True)
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    steps = []
    tsv = args.work / "steps.tsv"
    for line in tsv.read_text().splitlines() if tsv.is_file() else []:
        name, status, seconds, detail = (line.split("\t") + [""] * 4)[:4]
        steps.append({"step": name, "status": status, "seconds": int(seconds or 0), "detail": detail})
    pre = args.work / "preflight.json"
    summary = {"card": args.card, "dry_run": args.dry_run, "budget_s": args.budget, "wall_s": args.wall,
               "preflight": json.loads(pre.read_text()) if pre.is_file() else None, "steps": steps,
               "tests": tests(args.work / "junit.xml")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    width = max((len(s["step"]) for s in steps), default=4)
    for s in steps:
        print(f"  {s['step']:{width}s}  {s['status']:8s} {s['seconds']:4d}s  {s['detail']}")
    for t in summary["tests"]:
        print(f"  test {t['test']}: {t['outcome']} {t['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
