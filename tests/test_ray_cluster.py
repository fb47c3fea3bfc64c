"""A real two-node Ray cluster on loopback: a head started with `ray start --head`,
a worker node started with `ray start --address` from another working directory
(no shared run folder), a sweep with --address using both, and the worker node
killed mid-trial: its trial is retried on the head and the sweep completes."""
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from edgeprune import load_results  # noqa: E402

from conftest import sweep_config  # noqa: E402

pytestmark = pytest.mark.slow      # Ray instances, real data, killed processes

TESTS = Path(__file__).parent
# the `ray` command of this interpreter (a venv that is not activated has it beside its python, not on PATH)
RAY = str(Path(sys.executable).parent / "ray") if (Path(sys.executable).parent / "ray").is_file() else "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """(address, the worker node's process, its node id) of a head + one worker node, 1 CPU each."""
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=str(TESTS))
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    head_dir, worker_dir = tmp_path / "head", tmp_path / "worker"
    head_dir.mkdir()
    worker_dir.mkdir()
    head = subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                             "--node-ip-address", "127.0.0.1", *common], cwd=head_dir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    worker = None
    try:
        head_ids = _wait_for_nodes(address, 1, env)
        # another loopback address: the driver (on 127.0.0.1) then attaches to the head's raylet,
        # as it does on a real cluster, rather than to the node that the test kills
        worker = subprocess.Popen([RAY, "start", "--address", address, "--node-ip-address", "127.0.0.2", *common],
                                  cwd=worker_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        (worker_id,) = set(_wait_for_nodes(address, 2, env)) - set(head_ids)
        yield address, worker, worker_id[:12]
    finally:
        for proc in (worker, head):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)           # nothing of it is kept: no need for a slow, clean stop
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=60)


def _wait_for_nodes(address: str, n: int, env: dict, timeout: float = 90) -> list[str]:
    """The ids of the cluster's live nodes, once there are n."""
    code = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(' '.join(x['NodeID'] for x in ray.nodes() if x['Alive']))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = subprocess.run([sys.executable, "-c", code, address], env=env, capture_output=True, text=True,
                              timeout=60)
        ids = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
        if ids and len(ids[0].split()) == n:
            return ids[0].split()
        time.sleep(1)
    raise AssertionError(f"the cluster at {address} never had {n} live node(s)")


def test_a_sweep_runs_on_both_nodes_and_survives_losing_one(cluster, tiny_cifar, tmp_path):
    address, worker, worker_node = cluster
    run = tmp_path / "driver" / "run"
    cfg = sweep_config(tiny_cifar, run, models=[{"name": "resnet20", "pretrained": False}],
                       algorithms=["l1", "fpgm"], rates=[0.3, 0.6], threads=1,
                       finetune={"epochs": 50, "max_steps": 120, "batch_size": 32},
                       ray={"cpus_per_trial": 1, "max_retries": 2})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=str(TESTS))
    start = time.time()
    driver = subprocess.Popen([sys.executable, "-m", "edgeprune.cli", "sweep", str(tmp_path / "cfg.yaml"),
                               "--address", address, "--quiet"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until both nodes have finished a trial and run one each, then kill the worker node
    deadline, killed = time.time() + 240, False
    while time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
        if not (run / "results.db").exists():
            continue
        with sqlite3.connect(run / "results.db") as c:
            counts = dict(c.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall())
            done_on = dict(c.execute("SELECT json_extract(metrics, '$.ray_node'), COUNT(*) FROM trials "
                                     "WHERE status='done' GROUP BY 1").fetchall())
            nodes_done = len(done_on)
        if nodes_done >= 2 and counts.get("running", 0) >= 2:
            os.killpg(worker.pid, signal.SIGKILL)          # the worker node's raylet and its workers
            killed = True
            break
    assert killed, "never saw both nodes finish a trial and run another"
    out, err = driver.communicate(timeout=600)
    wall = time.time() - start
    assert driver.returncode == 0, err[-3000:]
    df = load_results(run)
    assert (df["status"] == "done").all() and len(df) == 5, df[["status", "error"]]
    nodes = df["ray_node"].value_counts()
    assert len(nodes) == 2, nodes                        # trials ran on both nodes
    # the lost node's trial was retried, unless it had just finished as the node went down
    # (its result already on the way: nothing was left there to retry)
    finished_as_lost = nodes.get(worker_node, 0) > done_on.get(worker_node, 0)
    assert df["attempts"].max() >= 2 or finished_as_lost, (nodes, done_on, worker_node)
    print(f"trials per node: {nodes.to_dict()}; retried: {int((df['attempts'] > 1).sum())}; wall {wall:.0f} s")
