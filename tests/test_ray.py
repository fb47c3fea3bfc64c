"""Parallel sweeps on a real local Ray instance (2 CPUs): same results as the local
executor, worker crashes retried, driver crashes and Ctrl-C resumed cleanly."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray")

from edgeprune import load_config, load_results, run_sweep  # noqa: E402
from edgeprune.store import ResultStore  # noqa: E402

from conftest import sweep_config  # noqa: E402

pytestmark = pytest.mark.slow      # Ray instances, real data, killed processes

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    marker_dir = tmp_path_factory.mktemp("markers")
    os.environ["EDGEPRUNE_TEST_MARKER"] = str(marker_dir / "died")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200_000_000,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
    yield marker_dir
    ray.shutdown()


def _cfg(data, out, **kw):
    base = dict(algorithms=["l1"], rates=[0.3, 0.5], threads=1)
    base.update(kw)
    return load_config(sweep_config(data, out, **base))


def test_ray_gives_the_same_results_as_local(ray_instance, tiny_cifar, tmp_path):
    # layers rebuilt from a folder of the user's own images: the images reach the workers with the data
    from PIL import Image
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    prune = {"reconstruct": 32, "reconstruct_from": str(folder)}
    run_sweep(_cfg(tiny_cifar, tmp_path / "local", prune=prune))
    run_sweep(_cfg(tiny_cifar, tmp_path / "ray", executor="ray", prune=prune))
    cols = ["trial_id", "status", "accuracy", "accuracy_pruned", "accuracy_reconstructed", "reconstruct_images",
            "params", "macs", "finetune_steps"]
    local = load_results(tmp_path / "local")[cols]
    parallel = load_results(tmp_path / "ray")[cols]
    assert (local["status"] == "done").all() and len(local) == 3
    assert local.equals(parallel)


def test_a_killed_worker_is_retried_then_given_up(ray_instance, tiny_cifar, tmp_path):
    models = [{"name": "tiny_models:dies_once", "pretrained": False},
              {"name": "tiny_models:always_dies", "pretrained": False}]
    run_sweep(_cfg(tiny_cifar, tmp_path / "run", executor="ray", models=models, algorithms=["l1"], rates=[0.5],
                   baseline=False, ray={"max_retries": 1}))
    assert (ray_instance / "died").exists()         # the first attempt really died
    with ResultStore(tmp_path / "run", create=False) as store:
        by_model = {t.model: t for t in store.trials()}
    survivor, hopeless = by_model["tiny_models:dies_once"], by_model["tiny_models:always_dies"]
    assert survivor.status == "done"
    assert hopeless.status == "failed" and "worker died 2 time(s)" in hopeless.error


def _sweep_process(config: Path, **extra_env: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               RAY_AUTH_MODE="disabled", **extra_env)
    return subprocess.Popen([sys.executable, "-m", "edgeprune.cli", "sweep", str(config), "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for(run: Path, condition, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run / "results.db").exists():
            with ResultStore(run, create=False) as store:
                if condition(store.counts()):
                    return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting on {run}")


def _write_config(tiny_cifar, tmp_path, algorithms, rates, steps=4, **over) -> tuple[Path, Path]:
    run = tmp_path / "run"
    cfg = sweep_config(tiny_cifar, run, algorithms=algorithms, rates=rates, executor="ray",
                       ray={"num_cpus": 2}, **over)
    cfg["finetune"].update(max_steps=steps, epochs=max(1, steps // 5))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, run


def test_driver_killed_mid_sweep_resumes_with_nothing_lost_or_duplicated(tiny_cifar, tmp_path):
    """kill -9 of the driver, its local Ray and its 2 workers: nothing finished is lost
    or rerun, and the files the workers kept (the ONNX files they time against) are
    gone once the same command has resumed the sweep (tests/test_scratch.py: how)."""
    from test_scratch import leftovers
    tmpdir, ray_tmp = tmp_path / "tmp", Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))   # Ray's sockets: short paths
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir), "RAY_TMPDIR": str(ray_tmp)}
    path, run = _write_config(tiny_cifar, tmp_path, ["l1", "fpgm"], [0.3, 0.5],
                              measure={"latency": ["onnxruntime"], "latency_repeats": 3, "latency_min_seconds": 0})
    proc = _sweep_process(path, **env)
    try:
        _wait_for(run, lambda c: c["done"] >= 2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)          # kill -9 the driver (and its local Ray)
        proc.wait()
    time.sleep(2)
    assert leftovers(tmpdir), "the killed sweep's workers should have left their files"
    with ResultStore(run, create=False) as store:
        before = {t.trial_id: t.finished_at for t in store.trials() if t.status == "done"}
        assert store.integrity_ok() and len(store.trials()) == 5
    resumed = _sweep_process(path, **env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-2000:]
    assert leftovers(tmpdir) == []                   # a Ray sweep with 2 workers leaves nothing, and the dead one's
    shutil.rmtree(ray_tmp, ignore_errors=True)
    with ResultStore(run, create=False) as store:
        trials = store.trials()
        assert store.integrity_ok()
    assert len(trials) == 5 and len({t.trial_id for t in trials}) == 5
    assert all(t.status == "done" for t in trials)
    for t in trials:                                 # no finished trial was rerun
        if t.trial_id in before:
            assert t.finished_at == before[t.trial_id]


def test_ctrl_c_cancels_running_trials(tiny_cifar, tmp_path):
    # trials long enough to be running still when the signal lands, on a loaded machine too (with
    # 4 steps the sweep once finished first: exit 0)
    path, run = _write_config(tiny_cifar, tmp_path, ["l1"], [0.5], steps=200)
    proc = _sweep_process(path)
    _wait_for(run, lambda c: c["running"] >= 1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 130
    with ResultStore(run, create=False) as store:
        counts = store.counts()
    assert counts["running"] == 0 and counts["cancelled"] >= 1


def test_find_picks_the_same_winner_through_the_same_rungs_on_ray(ray_instance, tiny_cifar, tmp_path):
    from edgeprune.search import find
    from test_find import find_config, train_tiny_checkpoint
    ckpt = train_tiny_checkpoint(tiny_cifar, tmp_path / "ckpt.pt")
    runs = {}
    for executor in ("local", "ray"):
        cfg = find_config(tiny_cifar, tmp_path / executor, ckpt)
        cfg.update(executor=executor, threads=1, models=cfg["models"][:1])     # the trained model: 2 cuts
        result = find(load_config(cfg), export=False)
        runs[executor] = result.record
    local, parallel = runs["local"], runs["ray"]
    assert local.winner is not None and local.winner == parallel.winner
    assert [(r.rung, r.steps, r.candidates, r.promoted) for r in local.rungs] == \
        [(r.rung, r.steps, r.candidates, r.promoted) for r in parallel.rungs]
    assert local.steps_spent == parallel.steps_spent


def test_allocated_trials_get_the_same_widths_on_ray_from_one_map(ray_instance, tiny_cifar, tmp_path):
    """The map is measured once per model and algorithm before the trials (not by each
    worker), and the same seed gives the same widths as the local executor."""
    cfg = dict(algorithms=["l1"], allocation=["sensitivity"], rates=[{"macs": 0.5}, {"params": 0.5}, 0.3],
               baseline=False, finetune={"epochs": 1, "max_steps": 0, "batch_size": 32},
               allocate={"widths": [0.25, 0.5], "images": 32}, measure={"latency": False, "eval_batch_size": 100})
    run_sweep(_cfg(tiny_cifar, tmp_path / "local", **cfg))
    run_sweep(_cfg(tiny_cifar, tmp_path / "ray", executor="ray", **cfg))
    widths = {}
    for name in ("local", "ray"):
        with ResultStore(tmp_path / name, readonly=True) as store:
            trials = store.trials()
        assert all(t.status == "done" for t in trials), [t.error for t in trials]
        widths[name] = {t.trial_id: t.metrics["allocation_widths"] for t in trials}
        if name == "ray":
            assert not any(t.metrics["map_measured"] for t in trials)         # the driver's task measured it
    assert widths["local"] == widths["ray"] and len(widths["ray"]) == 3
    assert len(list((tmp_path / "ray" / "allocation").glob("sensitivity-*.json"))) == 1
