"""Hardening: nothing edgeprune reads runs code, one sweep per run folder, read
commands write nothing, every bad input is one line and a start that fails writes
nothing, a trial that removes nothing says so."""
import hashlib
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from edgeprune import load_config, load_results, run_sweep
from edgeprune.cli import main
from edgeprune.errors import ConfigError, EdgepruneError

from conftest import force_status, make_cifar, sweep_config

TESTS = Path(__file__).parent


class _Payload:
    """Unpickling this creates the marker file: what a planted file would do."""
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _tree(path: Path) -> dict:
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(path.rglob("*")) if p.is_file()}


# -- 1. nothing edgeprune reads runs code ------------------------------------------------------------------------
@pytest.mark.slow
def test_a_planted_saved_model_is_never_unpickled(tiny_cifar, tmp_path, capsys):
    run = tmp_path / "run"
    run_sweep(load_config(sweep_config(tiny_cifar, run, rates=[0.5], baseline=False, save_models=True)))
    trial = load_results(run).iloc[0]
    marker = tmp_path / "pwned"
    with open(trial["model_path"], "wb") as f:
        pickle.dump({"format": "edgeprune-model/1", "state_dict": _Payload(marker)}, f)
    assert main(["deploy", str(run), trial["trial_id"][:8], "--data-dir", str(tiny_cifar)]) == 0
    assert not marker.exists()                 # refused, and the trial rebuilt by running it again
    assert main(["recommend", str(run), "--export", str(tmp_path / "export")]) == 0
    assert not marker.exists()


def test_a_planted_cifar_batch_is_refused_and_named(tmp_path):
    data = make_cifar(tmp_path / "data")
    marker = tmp_path / "pwned"
    batch = data / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps({"data": _Payload(marker), "labels": []}))
    cfg = sweep_config(data, tmp_path / "run")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["sweep", str(tmp_path / "cfg.yaml"), "--quiet"]) == 2
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["truncated", "wrong shape", "labels out of range"])
def test_a_broken_cifar_batch_is_one_line_naming_it(tmp_path, capsys, damage):
    data = make_cifar(tmp_path / "data")
    batch = data / "cifar-10-batches-py" / "data_batch_3"
    if damage == "truncated":
        batch.write_bytes(batch.read_bytes()[:5000])
    else:
        import numpy as np
        d = {"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4} if damage == "wrong shape" else \
            {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 99]}
        batch.write_bytes(pickle.dumps(d))
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(sweep_config(data, tmp_path / "run")))
    assert main(["sweep", str(tmp_path / "cfg.yaml"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data_batch_3" in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


# -- 2. one sweep per run folder -------------------------------------------------------------------------------
def _sweep_proc(cfg_path: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.Popen([sys.executable, "-m", "edgeprune.cli", "sweep", str(cfg_path), "--quiet", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.slow
def test_two_sweeps_on_one_folder_the_second_is_refused(tiny_cifar, tmp_path):
    cfg = sweep_config(tiny_cifar, tmp_path / "run", rates=[0.3, 0.5], finetune={"max_steps": 40, "batch_size": 16})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    first = _sweep_proc(tmp_path / "cfg.yaml")
    deadline = time.time() + 60
    while not (tmp_path / "run" / ".lock").exists() and time.time() < deadline:
        time.sleep(0.2)
    second = _sweep_proc(tmp_path / "cfg.yaml")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 1 and f"in use by another sweep (pid {first.pid}" in err, err
    assert first.wait(timeout=300) == 0
    with sqlite3.connect(tmp_path / "run" / "results.db") as c:
        assert c.execute("SELECT SUM(attempts), COUNT(*) FROM trials").fetchone() == (3, 3)   # each ran once


@pytest.mark.slow
def test_status_after_a_killed_driver_says_no_sweep_runs_and_watch_ends(tiny_cifar, tmp_path, capsys):
    cfg = sweep_config(tiny_cifar, tmp_path / "run", rates=[0.3, 0.5, 0.7],
                       finetune={"max_steps": 400, "batch_size": 16})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    proc = _sweep_proc(tmp_path / "cfg.yaml")
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.5)
        if (tmp_path / "run" / "results.db").exists():
            with sqlite3.connect(tmp_path / "run" / "results.db") as c:
                if c.execute("SELECT COUNT(*) FROM trials WHERE status='running'").fetchone()[0]:
                    break
    assert main(["status", str(tmp_path / "run")]) == 0
    assert "sweep: pid" in capsys.readouterr().out
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    assert main(["status", str(tmp_path / "run"), "--watch", "1"]) == 0      # returns: nothing will change
    out = capsys.readouterr().out
    assert time.time() - t0 < 10 and "no sweep is running" in out and "interrupted" in out, out
    # the next sweep takes the folder over and reruns the dead driver's trial
    assert main(["sweep", str(tmp_path / "cfg.yaml"), "--quiet"]) == 0
    assert (load_results(tmp_path / "run")["status"] == "done").all()


# -- 3. read commands never write; damaged and foreign stores ----------------------------------------------------
@pytest.fixture(scope="module")
def done_run(tmp_path_factory, tiny_cifar):
    run = tmp_path_factory.mktemp("ro") / "run"
    run_sweep(load_config(sweep_config(tiny_cifar, run, rates=[0.5])))
    return run


@pytest.mark.slow
def test_read_commands_write_nothing(done_run, tmp_path, capsys):
    before = _tree(done_run)
    for args in (["show", str(done_run)], ["export", str(done_run)], ["status", str(done_run)],
                 ["report", str(done_run), "--out", str(tmp_path / "rep")],
                 ["recommend", str(done_run)]):
        assert main(args) == 0, args
    assert _tree(done_run) == before        # not even SQLite's -wal / -shm files


@pytest.mark.parametrize("content, message", [(b"garbage" * 100, "damaged"), (b"", "damaged")])
def test_a_damaged_store_is_one_line_everywhere(tmp_path, capsys, content, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.db").write_bytes(content if content else b"SQLite format 3\x00" + b"\x01" * 200)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(sweep_config(make_cifar(tmp_path / "d"), run)))
    for args in (["show", str(run)], ["export", str(run)], ["status", str(run)], ["report", str(run)],
                 ["sweep", str(cfg), "--quiet"]):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert "results.db" in err and (message in err or "not an edgeprune results store" in err), err
        assert "Traceback" not in err and err.count("\n") == 1


def test_a_foreign_sqlite_file_is_left_alone(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with sqlite3.connect(run / "results.db") as c:
        c.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    digest = hashlib.sha256((run / "results.db").read_bytes()).hexdigest()
    assert main(["show", str(run)]) == 2
    assert "not an edgeprune results store (its tables: invoices)" in capsys.readouterr().err
    assert hashlib.sha256((run / "results.db").read_bytes()).hexdigest() == digest


# -- 4. everything validated before anything is written --------------------------------------------------------
def _refused(cfg: dict, tmp_path: Path, capsys, message: str, code: int = 2) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["sweep", str(path), "--quiet"]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not Path(cfg["out"]).exists()


@pytest.mark.parametrize("kind", ["missing", "truncated", "text", "text with a number", "folder",
                                  "wrong architecture"])
def test_bad_checkpoints_are_refused_at_the_start(tiny_cifar, tmp_path, capsys, kind):
    ckpt = tmp_path / "w.pt"
    if kind == "truncated":
        torch.save(torch.nn.Linear(64, 10).state_dict(), ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    elif kind == "text":
        ckpt.write_text("not a checkpoint at all")
    elif kind == "text with a number":          # the weights-only unpickler raised KeyError: 101 on it
        ckpt.write_text("hello\nworld 101\n")
    elif kind == "folder":
        ckpt.mkdir()
    elif kind == "wrong architecture":
        torch.save(torch.nn.Linear(64, 10).state_dict(), ckpt)
    cfg = sweep_config(tiny_cifar, tmp_path / "run", models=[{"name": "resnet20", "checkpoint": str(ckpt)}])
    _refused(cfg, tmp_path, capsys, str(ckpt))


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["finetune"].update(epochs=float("inf")), "finetune.epochs"),
    (lambda c: c["dataset"].update(normalization=[[0.5, 0.5, 0.5], [0.2, 0.0, 0.2]]), "std > 0"),
    (lambda c: c["dataset"].update(normalization=[[0.5, 0.5], [0.2, 0.2]]), "3 numbers"),
    (lambda c: c.update(rates={"start": 0.8, "stop": 0.1, "step": 0.1}), "the range is empty"),
    (lambda c: c.update(models=["resnet20", "resnet20"]), "listed twice"),
    (lambda c: c.update(rates=[0.5, 0.5]), "listed twice"),
    (lambda c: c.update(algorithms=["l1", "l1"]), "listed twice"),
    (lambda c: c.update(models=5), "give models as a list"),
    (lambda c: c.update(quantize=5), "give quantize as a list"),
    (lambda c: c.update(device="cuda"), "torch sees no CUDA GPU"),
])
def test_bad_settings_fail_validation_and_write_nothing(tiny_cifar, tmp_path, capsys, mutate, message):
    if message == "torch sees no CUDA GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = sweep_config(tiny_cifar, tmp_path / "run")
    mutate(cfg)
    _refused(cfg, tmp_path, capsys, message)


def test_a_binary_config_and_paths_that_are_files(tmp_path, tiny_cifar, done_run, capsys):
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)))
    assert main(["sweep", str(tmp_path / "bin.yaml")]) == 2
    assert "not a text file" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(sweep_config(tiny_cifar, a_file)))
    for args, message in [(["sweep", str(tmp_path / "cfg.yaml")], "is a file"),
                          (["report", str(done_run), "--out", str(a_file)], "is a file"),
                          (["export", str(done_run), "-o", str(tmp_path / "missing" / "x.csv")], "does not exist"),
                          (["latency", str(a_file), "--repeats", "0"], "out of range"),
                          (["latency", str(a_file), "--device", "ftp://pi:8787"], "expected http://HOST:PORT"),
                          (["deploy", str(done_run), "x", "--opset", "5"], "out of range (9..23)")]:
        try:
            code = main(args)
        except SystemExit as e:           # argparse's own one-line errors
            code = e.code
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (args, err)


def test_show_lists_trial_ids(done_run, capsys):
    from edgeprune.store import ResultStore
    assert main(["show", str(done_run)]) == 0
    out = capsys.readouterr().out
    assert all(t.trial_id[:8] in out for t in ResultStore(done_run, readonly=True).trials())


@pytest.mark.slow
def test_other_images_under_the_same_run_are_refused(tiny_cifar, tmp_path):
    run = tmp_path / "run"
    run_sweep(load_config(sweep_config(tiny_cifar, run, rates=[0.5], baseline=False)))
    force_status(run, load_results(run).iloc[0]["trial_id"], "pending")
    other = make_cifar(tmp_path / "other", seed=7)
    with pytest.raises(EdgepruneError, match="not the one run folder .* was made with"):
        run_sweep(load_config(sweep_config(other, run, rates=[0.5], baseline=False)))


# -- broken image folders ------------------------------------------------------------------------------------------
def _folder(root: Path, classes=("a", "b"), val=("a", "b"), n=2, constant: bool = False) -> Path:
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, names in (("train", classes), ("val", val)):
        for c in names:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.full((20, 20, 3), 90, np.uint8) if constant else \
                    rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def test_a_constant_channel_cannot_be_normalised_and_says_so(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", constant=True)
    cfg = sweep_config(root, tmp_path / "run", models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}])
    cfg["dataset"] = {"name": "imagefolder", "root": str(root), "image_size": 16}
    _refused(cfg, tmp_path, capsys, "std 0")


@pytest.mark.parametrize("damage, message", [
    ("corrupt", "cannot be read"), ("text", "cannot be read"), ("empty class", "holds no images"),
    ("other classes", "hold different classes")])
def test_broken_image_folders_are_named(tmp_path, capsys, damage, message):
    root = _folder(tmp_path / "imgs", val=("a", "c") if damage == "other classes" else ("a", "b"))
    if damage == "corrupt":
        (root / "train" / "a" / "0.png").write_bytes((root / "train" / "a" / "0.png").read_bytes()[:40])
    elif damage == "text":
        (root / "train" / "b" / "x.jpg").write_text("I am not a JPEG")
    elif damage == "empty class":
        (root / "train" / "z").mkdir()
        (root / "val" / "z").mkdir()
    cfg = sweep_config(root, tmp_path / "run", models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}])
    cfg["dataset"] = {"name": "imagefolder", "root": str(root), "image_size": 16}
    _refused(cfg, tmp_path, capsys, message)
    if damage in ("corrupt", "text"):
        cfg["dataset"]["skip_bad_images"] = True
        (tmp_path / "ok.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["sweep", str(tmp_path / "ok.yaml"), "--quiet"]) == 0
        assert "skipped 1 unreadable image" in capsys.readouterr().err


# -- 5. a trial that removes nothing says so -----------------------------------------------------------------------
def test_a_trial_that_removes_nothing_warns_with_the_fix(tiny_cifar, tmp_path, capsys):
    cfg = sweep_config(tiny_cifar, tmp_path / "run", models=[{"name": "tiny_models:tiny_convnext",
                                                              "pretrained": False}], baseline=False, rates=[0.5])
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["sweep", str(tmp_path / "cfg.yaml"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "removed no channel" in err and "target.layers: [conv2d, linear]" in err
    assert load_results(tmp_path / "run").iloc[0]["param_reduction"] == 0
