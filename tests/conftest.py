"""Fixtures: tiny CIFAR-format datasets and tiny nets, made by the tests themselves."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # makes `tiny_models` importable as a factory path
# One Ray authentication mode for every Ray instance the tests start in this process
# (a second instance with another mode cannot create actors).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

SHARED = Path(__file__).resolve().parents[2] / "shared"


def make_cifar(root: Path, n_train: int = 200, n_test: int = 100, num_classes: int = 10, seed: int = 0) -> Path:
    """A CIFAR-10-layout folder whose classes are learnable (class-tinted noise)."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    palette = rng.integers(0, 255, size=(num_classes, 3))

    def images(n):
        labels = rng.integers(0, num_classes, size=n)
        noise = rng.integers(0, 80, size=(n, 3, 32, 32))
        x = (palette[labels][:, :, None, None] * 0.7 + noise).clip(0, 255).astype(np.uint8)
        return x.reshape(n, 3072), labels.tolist()

    per = n_train // 5
    for i in range(1, 6):
        x, y = images(per)
        with open(base / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": x, "labels": y, "batch_label": f"batch {i}"}, f)
    x, y = images(n_test)
    with open(base / "test_batch", "wb") as f:
        pickle.dump({"data": x, "labels": y}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(num_classes)]}, f)
    return root


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory) -> Path:
    return make_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models gain nothing from threads, and one thread keeps the test process
    from fighting Ray workers and other jobs for the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


def sweep_config(data_root: Path, out: Path, **overrides) -> dict:
    """A small, fast sweep config as a dict."""
    cfg = {
        "name": "test", "out": str(out), "seed": 0,
        "models": [{"name": "resnet20", "pretrained": False}],
        "algorithms": ["l1"], "rates": [0.5],
        "dataset": {"name": "cifar10", "root": str(data_root)},
        "finetune": {"epochs": 1, "max_steps": 2, "batch_size": 32, "lr": 0.01},
        # layers are rebuilt (prune.reconstruct, on by default) only in the tests whose subject that
        # is: tests/test_recover.py, test_recovery_stage.py, test_ray.py's local-vs-Ray check
        "prune": {"reconstruct": 0},
        # tiny models: no 1 s floor on each timing (tests/test_backends.py times with it)
        "measure": {"latency_repeats": 2, "latency_warmup": 1, "eval_batch_size": 100, "latency_min_seconds": 0},
    }
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def force_status(run_dir: Path, trial_id: str, status: str) -> None:
    """Rewrite a trial's status behind the store's back: what a crash (or a hand
    edit) leaves, which the store itself refuses to do to a finished trial."""
    import sqlite3
    with sqlite3.connect(Path(run_dir) / "results.db") as conn:
        conn.execute("UPDATE trials SET status=? WHERE trial_id=?", (status, trial_id))


# -- leaving the test process -------------------------------------------------
# Ray leaves C++ threads (its GCS client among them) behind ray.shutdown(); at interpreter exit
# they are joined, and one CI run printed its summary, then hung there for 18 minutes with the
# main thread joining the GCS client's thread (ray-project/ray has such shutdown hangs on record).
# Once pytest has written everything, a `pytest` process that imported Ray exits with its status
# directly. pytest.main() called from another program is left alone.
_SESSION: dict = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["status"] = int(exitstatus)


def _is_pytest_process() -> bool:
    entry = Path(sys.argv[0] if sys.argv else "")
    return entry.name in ("pytest", "py.test") or (entry.name == "__main__.py" and entry.parent.name == "pytest")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "ray" in sys.modules and "status" in _SESSION and _is_pytest_process():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["status"])
