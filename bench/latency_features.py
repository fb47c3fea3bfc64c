"""Which features the latency model should be fitted on: MACs per class of layer
(latency models version 1), or MACs and output elements per class (version 2), refitted
on the networks a run already timed, so both are judged on the same timings.

    python bench/latency_features.py RUN [RUN ...] [--out bench/results/latency_features.json]

RUN is a run folder of an allocated sweep (bench/allocation.py keeps them in
/tmp/edgeprune-bench-allocation). For every latency model in RUN/allocation/ it reports
the leave-one-out error of each fit over the networks timed to fit it, and, on the
networks the run's latency allocation then built (measured right after allocating, on the
run's paired scale), the error of each fit's prediction.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from _common import RESULTS, cpu_name, write


def _errors(predicted, measured) -> dict:
    e = np.asarray(predicted) / np.asarray(measured) - 1
    return {"median_abs": float(np.median(np.abs(e))), "min": float(e.min()), "max": float(e.max()),
            "within_10pct": int((np.abs(e) <= 0.10).sum()), "networks": int(len(e))}


def evaluate(run: Path) -> dict:
    from edgeprune.models import create_model
    from edgeprune.prune.groups import channel_structure
    from edgeprune.allocate import LatencyModel
    from edgeprune.allocate.cost import LatencyFeatures
    from edgeprune.allocate.latency import design, fit, leave_one_out
    from edgeprune.store import ResultStore
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    model_cfg = cfg["models"][0]
    size = cfg.get("dataset", {}).get("image_size") or 32
    backends = (cfg.get("measure") or {}).get("latency") or [None]
    first = backends[0].get("backend") if isinstance(backends[0], dict) else backends[0]
    model = create_model(model_cfg["name"], 10, pretrained=False)
    structure = channel_structure(model, torch.randn(1, 3, size, size))
    with ResultStore(run, create=False) as store:      # results.py's table leaves dict metrics out
        trials = [t.metrics for t in store.trials() if t.status == "done"]
    out = {}
    for path in sorted((run / "allocation").glob("latency-*.json")):
        lm = json.loads(path.read_text())
        widths = [s["widths"] for s in lm["samples"]]
        y = np.array([s["measured"] for s in lm["samples"]])
        entry = {"backend": lm["backend"], "unit": lm["unit"], "version": lm.get("version", 1)}
        # a trial's stored prediction error is its run's first backend's model's
        allocated = [t for t in trials if isinstance(t.get("allocation_widths"), dict)
                     and t.get("latency_prediction_error") is not None] if lm["backend"] == first else []
        if allocated:
            # measured (on the run's paired scale, right after allocating) = what the stored model
            # predicted / (1 + its stored error)
            stored = LatencyModel.from_json(lm).cost(structure)
            measured = np.array([stored.total(t["allocation_widths"]) / (1 + t["latency_prediction_error"])
                                 for t in allocated])
        features = LatencyFeatures(structure, lm["block"])
        for name, outputs in (("macs", False), ("macs_and_outputs", True)):
            classes = features.classes if outputs else features.kinds
            rows = design(features, widths, classes)
            loo = leave_one_out(rows, y)
            coef = fit(rows, y)
            result = {"features": rows.shape[1] - 1, "leave_one_out": _errors(loo, y)}
            if allocated:
                mine = design(features, [t["allocation_widths"] for t in allocated], classes) @ coef
                result["allocated_networks"] = _errors(mine, measured)
            entry[name] = result
        out[path.name] = entry
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", default=str(RESULTS / "latency_features.json"))
    args = p.parse_args()
    path = Path(args.out)
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored.setdefault("runs", {})
    for run in args.runs:
        stored["runs"][run.name] = evaluate(run)
        print(run.name, json.dumps(stored["runs"][run.name], indent=1))
    stored.update(cpu=cpu_name(), command="python bench/latency_features.py " + " ".join(map(str, args.runs)))
    write("latency_features", stored, str(path))


if __name__ == "__main__":
    main()
