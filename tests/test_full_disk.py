"""A disk that fills up mid-sweep (the run folder's, or the temporary folder's): the
sweep stops with one line naming the disk, the folder and the space, exit 1; the
store stays whole, no finished trial is lost, none is failed, and the same command
resumes once there is room. Each test mounts a small tmpfs of its own (CI runs as
root) and is skipped, saying why, where mounting is refused."""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from edgeprune import scratch
from edgeprune.cli import main
from edgeprune.diskspace import DiskFull
from edgeprune.store import ResultStore
from edgeprune.sweep import SilentProgress

from conftest import sweep_config

TESTS = Path(__file__).parent


def _mount(path: Path, size: str, *options: str) -> subprocess.CompletedProcess:
    opts = ",".join((*options, f"size={size}"))
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs; `resize(small_disk, "64m")` makes room."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the tests as root)")
    done = _mount(disk, "16m")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def resize(disk: Path, size: str) -> None:
    assert _mount(disk, size, "remount").returncode == 0


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk up to `leave` bytes free."""
    filler = disk / f"filler{len(list(disk.glob('filler*')))}"
    with open(filler, "wb") as f:
        while shutil.disk_usage(disk).free > leave:
            f.write(b"\0" * min(1 << 20, max(4096, shutil.disk_usage(disk).free - leave)))
            f.flush()
    return filler


@pytest.fixture
def fill_after_first_trial(monkeypatch):
    """Fill a disk (up to 100 kB free) as soon as the sweep's first trial is recorded."""
    state = {"disk": None}
    original = SilentProgress.task_finished

    def task_finished(self, task, results):
        original(self, task, results)
        if state["disk"] is not None and any(status == "done" for _, status, _ in results):
            fill(state["disk"], 100_000)
            state["disk"] = None
    monkeypatch.setattr(SilentProgress, "task_finished", task_finished)
    return state


@pytest.fixture
def temp_dir_on(monkeypatch):
    """Point TMPDIR (and this process's scratch folder) at a folder; give it back after."""
    made = []

    def point(folder: Path) -> Path:
        folder.mkdir(exist_ok=True)
        monkeypatch.setenv("TMPDIR", str(folder))
        monkeypatch.setattr(tempfile, "tempdir", None)
        monkeypatch.setattr(scratch, "_mine", None)
        made.append(folder)
        return folder
    yield point
    if scratch._mine is not None and made:
        scratch._mine.remove()


def _config(tmp_path: Path, data: Path, out: Path, **kw) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(sweep_config(data, out, rates=[0.3, 0.5, 0.7], **kw)))
    return path


def _states(run: Path) -> dict:
    with sqlite3.connect(run / "results.db") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {r[0]: (r[1], r[2]) for r in c.execute("SELECT trial_id, status, finished_at FROM trials")}


def _stops_then_resumes(config: Path, run: Path, disk: Path, capsys, *words: str) -> None:
    assert main(["sweep", str(config), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("edgeprune: error: the disk mounted at "), err
    for word in (str(disk), *words):
        assert word in err, (word, err)
    before = _states(run)
    statuses = [s for s, _ in before.values()]
    assert statuses.count("done") == 1 and "failed" not in statuses, before    # the interrupted trial reruns
    done = {i: f for i, (s, f) in before.items() if s == "done"}
    assert main(["sweep", str(config), "--quiet"]) == 1          # still full: says so again, loses nothing
    again = capsys.readouterr().err
    assert again.count("\n") == 1 and " is full: " in again, again
    assert {i: f for i, (s, f) in _states(run).items() if s == "done"} == done
    for filler in disk.glob("filler*"):
        filler.unlink()
    resize(disk, "64m")
    assert main(["sweep", str(config), "--quiet"]) == 0, capsys.readouterr().err
    after = _states(run)
    assert all(s == "done" for s, _ in after.values()) and len(after) == len(before)
    assert {i: after[i][1] for i in done} == done                              # the finished trial was kept


@pytest.mark.slow
def test_a_full_run_folder_stops_the_sweep_in_one_line_and_it_resumes(tiny_cifar, tmp_path, small_disk, capsys,
                                                                       fill_after_first_trial):
    run = small_disk / "run"
    config = _config(tmp_path, tiny_cifar, run, save_models=True)       # every trial writes its model and ONNX
    fill_after_first_trial["disk"] = small_disk
    _stops_then_resumes(config, run, small_disk, capsys, f"writing in {run}", "it needed ", "--out")


@pytest.mark.slow
def test_a_full_temp_dir_stops_the_sweep_in_one_line_and_it_resumes(tiny_cifar, tmp_path, small_disk, capsys,
                                                                     fill_after_first_trial, temp_dir_on):
    temp = temp_dir_on(small_disk / "tmp")
    run = tmp_path / "run"
    config = _config(tmp_path, tiny_cifar, run)
    cfg = yaml.safe_load(config.read_text())
    cfg["measure"]["latency"] = ["torch", "onnxruntime"]       # each trial exports ONNX files to the temp dir
    config.write_text(yaml.safe_dump(cfg))
    fill_after_first_trial["disk"] = small_disk
    _stops_then_resumes(config, run, small_disk, capsys, f"writing in {temp}", "TMPDIR")


def test_a_full_store_is_one_error_and_the_file_stays_whole(small_disk):
    rows = [{"trial_id": f"t{i}", "model": "m", "algorithm": "l1", "target_kind": "channels", "rate": 0.5, "seed": 0,
             "spec": {}} for i in range(3)]
    run = small_disk / "run"
    with ResultStore(run) as store:
        store.add_trials(rows)
        store.finish({"t0": {"accuracy": 0.5}})
        fill(small_disk, 0)
        with pytest.raises(DiskFull, match=f"mounted at {small_disk}"):
            store.finish({"t1": {"accuracy": 0.6, "notes": "x" * 200_000}})
        assert store.integrity_ok()
        assert [t.status for t in store.trials()] == ["done", "pending", "pending"]
    for filler in small_disk.glob("filler*"):
        filler.unlink()
    with ResultStore(run) as store:
        assert store.integrity_ok() and store.counts()["done"] == 1
        store.finish({"t1": {"accuracy": 0.6}})
        assert store.counts()["done"] == 2
    # opened while the disk is full (what a resumed sweep does first): SQLite cannot make its
    # shared-memory file and says "disk I/O error"; edgeprune says the disk is full, not that the
    # store is damaged
    fill(small_disk, 0)
    with pytest.raises(DiskFull, match=f"mounted at {small_disk} is full: writing in {run} "):
        ResultStore(run)


@pytest.mark.slow
def test_a_full_temp_dir_on_ray_workers_stops_the_sweep_and_it_resumes(tiny_cifar, tmp_path, small_disk):
    pytest.importorskip("ray")
    resize(small_disk, "1m")                  # less than the unpruned model's ONNX file
    temp = small_disk / "tmp"
    temp.mkdir()
    run = tmp_path / "run"
    config = _config(tmp_path, tiny_cifar, run, executor="ray", threads=1, ray={"num_cpus": 2})
    cfg = yaml.safe_load(config.read_text())
    cfg["measure"]["latency"] = ["torch", "onnxruntime"]
    config.write_text(yaml.safe_dump(cfg))
    ray_temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")       # Ray's own files elsewhere (a short path: sockets)
    env = dict(os.environ, TMPDIR=str(temp), RAY_TMPDIR=ray_temp, RAY_AUTH_MODE="disabled",
               PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    try:
        def sweep() -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "edgeprune.cli", "sweep", str(config), "--quiet"], env=env,
                                  capture_output=True, text=True, timeout=600)
        first = sweep()
        ours = [line for line in first.stderr.splitlines() if line.startswith("edgeprune:")]
        assert first.returncode == 1 and len(ours) == 1, first.stderr[-3000:]
        assert f"the disk mounted at {small_disk} is full" in ours[0] and "TMPDIR" in ours[0], ours
        assert "failed" not in {s for s, _ in _states(run).values()}
        resize(small_disk, "64m")
        second = sweep()
        assert second.returncode == 0, second.stderr[-3000:]
        assert {s for s, _ in _states(run).values()} == {"done"}
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
