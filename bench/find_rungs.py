"""One real `edgeprune find` that goes into rungs: bench/find.py's candidates (the
published CIFAR-10 ResNet-20/32/44/56, l1, uniform and latency allocation) in fp32 only,
so that no unpruned int8 model meets the goal and ends the search at the screen.

    python bench/find_rungs.py --data-dir ../shared/datasets --weights-dir ../shared/models/cifar10 \\
        [--goal-ms 1.2785] [--budget 600] [--maps RUN/allocation]

--maps copies a finished run's RUN/allocation/ (sensitivity maps, latency models) into
this run first, so they are not measured again (bench/find.py's find-latency run has
them for the same models and settings). Writes bench/results/find_rungs.json: the
rungs, each candidate's scores and why it stopped, the winner as find printed it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
import types
from pathlib import Path

import torch

from _common import RESULTS, cpu_name, write
from find import MODELS, RUNS, candidates_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--weights-dir", required=True)
    p.add_argument("--goal-ms", type=float, default=1.2785, help="max_latency_ms (bench/find.py's goal on its run)")
    p.add_argument("--budget", type=int, default=600, help="fine-tune steps in all")
    p.add_argument("--maps", help="a run's allocation/ folder to start from")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    from edgeprune import load_config
    from edgeprune.search import find
    args = types.SimpleNamespace(models=MODELS, weights_dir=a.weights_dir, algorithms=["l1"],
                                 allocation=["uniform", "latency"], rates=[0.2, 0.4, 0.6, 0.8], quantize=["none"],
                                 data_dir=a.data_dir, test_fraction=0.2, map_images=256, threads=1)
    run = RUNS / "find" / "find-fp32"
    if a.maps and not (run / "allocation").exists():
        run.mkdir(parents=True, exist_ok=True)
        shutil.copytree(a.maps, run / "allocation")
    cfg = candidates_config(args, run, 0)
    cfg["search"] = {"goals": {"max_latency_ms": a.goal_ms}, "budget": {"steps": a.budget}}
    start = time.perf_counter()
    result = find(load_config(cfg))
    r = result.record
    out = {"cpu": cpu_name(), "seconds_this_start": time.perf_counter() - start, "maps_copied": bool(a.maps),
           "search_seconds": r.seconds, "goal_ms": a.goal_ms, "budget": a.budget, "ended": r.ended,
           "steps_spent": r.steps_spent, "plan": r.plan,
           "rungs": [{"rung": x.rung, "steps": x.steps, "candidates": [r.candidates[k].label for k in x.candidates],
                      "went_on": [r.candidates[k].label for k in x.promoted]} for x in r.rungs],
           "candidates": {c.label: {"stopped": c.stopped, "scores": c.scores} for c in r.candidates.values()},
           "printed": result.format()}
    print(result.format())
    print(f"wrote {write('find_rungs', out, a.out)}")


if __name__ == "__main__":
    main()
