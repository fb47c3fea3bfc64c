"""No leaked files: temporary model files live in per-process scratch folders that
go with their process however it ends (normal exit, kill -9, a Ray worker ended
by its raylet), and a long-lived worker keeps one sweep's files at a time."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edgeprune import scratch

from conftest import sweep_config

TESTS = Path(__file__).parent
HOLD = ("import sys, time; from edgeprune import scratch; p = scratch.folder(); "
        "(p / 'model.onnx').write_bytes(b'0' * 4096); print(p, flush=True); time.sleep(float(sys.argv[1]))")


def _env(tmpdir: Path) -> dict:
    path = os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=path, RAY_AUTH_MODE="disabled")


@pytest.fixture
def ray_temp(monkeypatch):
    """Ray's own files apart from the temp dir under test, at a short path (its socket
    paths must fit in 107 bytes)."""
    path = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def leftovers(tmpdir: Path) -> list[str]:
    """What edgeprune left in a temp dir: anything under its scratch root, and the
    folders that older versions made (edgeprune-onnx-*, edgeprune-quant-*)."""
    root = tmpdir / scratch._root_name()
    held = [str(p.relative_to(tmpdir)) for p in root.iterdir()] if root.is_dir() else []
    return held + [p.name for p in tmpdir.glob("edgeprune-*") if p != root]


def _holder(tmpdir: Path, seconds: float) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(seconds)], env=_env(tmpdir), stdout=subprocess.PIPE,
                            text=True)
    return proc, Path(proc.stdout.readline().strip())


def test_a_process_removes_its_scratch_folder_when_it_exits(tmp_path):
    proc, folder = _holder(tmp_path, 0)
    assert proc.wait(timeout=60) == 0
    assert folder.parent == tmp_path / scratch._root_name() and not folder.exists()
    assert leftovers(tmp_path) == []


def test_a_killed_process_folder_is_removed_by_the_next_one_and_a_live_one_is_not(tmp_path, monkeypatch):
    killed, dead = _holder(tmp_path, 300)
    alive, live = _holder(tmp_path, 300)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert (dead / "model.onnx").is_file()          # kill -9: the process could not clean up
        monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path))
        assert scratch.remove_stale() == 1               # what every sweep does at its start and end
        assert not dead.exists() and (live / "model.onnx").is_file()
    finally:
        alive.kill()
        alive.wait()
    assert scratch.remove_when_free([live], timeout=10) == []
    assert leftovers(tmp_path) == []


def test_a_long_lived_ray_worker_keeps_one_sweeps_files(tiny_cifar, tmp_path, monkeypatch):
    """A worker of a cluster that outlives sweeps: a new sweep's task closes the
    context of the one before (its unpruned model's files with it)."""
    pytest.importorskip("ray")
    from edgeprune import load_config
    from edgeprune.data import load_dataset
    from edgeprune.sweep import plan_trials
    from edgeprune.sweep.executors import ray_worker as rx
    from edgeprune.sweep.options import RunOptions
    from edgeprune.sweep.settings import TrialSettings
    monkeypatch.setattr(rx, "_CONTEXTS", {})
    monkeypatch.setattr(rx, "restore_plugins", lambda _: None)
    packed = rx.pack(load_dataset(load_config(sweep_config(tiny_cifar, tmp_path / "a")).dataset, seed=0))
    contexts = []
    for name in "ab":
        cfg = load_config(sweep_config(tiny_cifar, tmp_path / name, finetune={"max_steps": 1, "batch_size": 8,
                                                                              "lr": 0.01 if name == "a" else 0.02}))
        shared = {"settings": TrialSettings.from_config(cfg), "options": RunOptions.from_config(cfg, cfg.out),
                  "threads": 1, "plugins": None}
        ctx = rx.context(shared, packed)
        base = ctx.unpruned(plan_trials(cfg)[0])
        files = ctx.deploy_files("t", base.model, base, 0)
        files.reference.onnx()
        files.close()
        contexts.append(files.reference.folder)
    assert len(rx._CONTEXTS) == 1
    assert not contexts[0].exists() and contexts[1].is_dir()    # the first sweep's files went with its context
    next(iter(rx._CONTEXTS.values())).close()
    assert not contexts[1].exists()
