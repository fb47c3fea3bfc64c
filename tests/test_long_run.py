"""A long sweep holds steady: what the driver keeps per trial does not pile up
(progress bars, the Ray tracker's steps), and bench/soak.py measures it."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeprune.sweep import RichProgress

ROOT = Path(__file__).resolve().parents[1]


def _task(i: int):
    spec = SimpleNamespace(describe=lambda: f"trial {i}")
    return SimpleNamespace(trial_ids=[f"t{i}"], spec=spec, variants=[])


def test_the_progress_of_a_long_sweep_reuses_its_bars():
    progress = RichProgress()
    progress.console.file = io.StringIO()
    progress.start(total=300, already_done=0)
    try:
        for i in range(0, 300, 2):                    # two trials at a time, as two workers run them
            a, b = _task(i), _task(i + 1)
            progress.task_started(a)
            progress.task_started(b)
            progress.step("t" + str(i), 1, 4, 0.25)
            progress.progress.make_tasks_table(progress.progress.tasks)     # what a refresh draws
            progress.task_finished(a, [(a.spec, "done", None)])
            progress.task_finished(b, [(b.spec, "failed", None)])
        last = _task(300)
        progress.task_started(last)
        shown = [t for t in progress.progress.tasks if t.visible]
    finally:
        progress.stop()
    # rich keeps what it drew of every bar it ever had (its columns' caches, even of removed
    # bars): 300 trials must not make 300 bars
    assert len(progress.progress.tasks) <= 3
    drawn = [getattr(c, "_renderable_cache", {}) for c in progress.progress.columns]
    assert max(len(d) for d in drawn) <= 3 and max(len(d) for d in drawn) > 0
    assert len(shown) == 2 and shown[-1].description.strip() == "trial 300"
    assert shown[-1].total is None and shown[-1].completed == 0        # a reused bar starts afresh
    assert len(progress.names) == len(progress.rows) == len(progress.bars) == 1


def test_the_ray_tracker_hands_each_step_over_once():
    pytest.importorskip("ray")
    from edgeprune.sweep.executors.ray_executor import _Tracker
    tracker = _Tracker()
    tracker.started("a", "/tmp/x")
    tracker.step("a", 1, 4, 0.25)
    attempts, steps, folders = tracker.snapshot()
    assert attempts == {"a": 1} and steps == {"a": (1, 4, 0.25)} and folders == {"/tmp/x"}
    attempts, steps, folders = tracker.snapshot()
    assert attempts == {"a": 1} and steps == {} and folders == {"/tmp/x"}


@pytest.mark.slow
def test_the_soak_benchmark_runs_and_leaves_nothing(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "soak.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               RAY_AUTH_MODE="disabled")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--trials", "110", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    first, last = result["at_trial"]["10"], result["at_trial"]["110"]
    assert {w["role"] for w in last["workers"]} >= {"worker", "tracker actor"}
    assert last["driver"]["open_fds"] == first["driver"]["open_fds"]
    assert result["after_sweep"] == {"scratch_files": 0, "scratch_bytes": 0}
    assert result["timing"]["cpu_s_per_trial_start"] > 0 and result["timing"]["wall_s_per_trial_end"] > 0
