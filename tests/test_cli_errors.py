"""Every refusal of the command line is one line naming the culprit and the fix, with
exit code 2 for bad input: argparse's range errors, a read-only run folder, paths that
are folders."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.cli import main

from fake_runs import make_run


def _one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("argv, names", [
    (["deploy", "RUN", "t", "--opset", "5"], "--opset: 5 is out of range (9..23)"),
    (["recommend", "RUN", "--top", "0"], "--top: 0 is out of range"),
    (["latency", "m.onnx", "--repeats", "0"], "--repeats: 0 is out of range"),
    (["status", "RUN", "--watch", "-1"], "--watch: -1 is out of range"),
    (["refine", "RUN", "--epochs", "0"], "--epochs: 0 is out of range"),
    (["show", "RUN", "--status", "nope"], "--status: invalid choice: 'nope'"),
    (["sweep"], "the following arguments are required: config"),
])
def test_argparse_refusals_are_one_line_with_exit_2(argv, names, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert names in _one_line(capsys.readouterr().err)


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--plugin", "lab_plugin", "algorithms"], ["algorithms", "--plugin", "lab_plugin"]])
def test_plugin_is_taken_before_or_after_the_command(argv):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))       # a fresh process: nothing imported yet
    out = subprocess.run([sys.executable, "-m", "edgeprune.cli", *argv], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and "lab_energy" in out.stdout, out.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_cifar):
    from conftest import sweep_config
    from edgeprune import load_config, run_sweep
    run = tmp_path_factory.mktemp("done") / "run"
    run_sweep(load_config(sweep_config(tiny_cifar, run, rates=[0.5], baseline=False)))
    return run


@pytest.fixture
def read_only_run(tmp_path, finished_run):
    """A finished run folder on a read-only mount (root ignores file modes: mount it)."""
    run = finished_run
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(run), str(ro)], capture_output=True).returncode:
        pytest.skip("a read-only mount needs root and mount(8); not available here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True).returncode:
            pytest.skip("remounting read-only was refused here")
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


@pytest.mark.parametrize("argv", [["report", "{ro}"], ["export", "{ro}", "-o", "{ro}/out.csv"],
                                  ["sweep", "{ro}/config.yaml", "--out", "{ro}", "--data-dir", "{data}", "--quiet"]])
@pytest.mark.slow
def test_a_read_only_run_folder_is_one_line_naming_it(read_only_run, tiny_cifar, argv, capsys):
    code = main([a.format(ro=read_only_run, data=tiny_cifar) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and str(read_only_run) in _one_line(err) and "read-only" in err, err


def test_show_and_status_read_a_read_only_run_folder(read_only_run, capsys):
    assert main(["show", str(read_only_run)]) == 0
    assert main(["status", str(read_only_run)]) == 0
    assert "done" in capsys.readouterr().out


def test_an_output_that_is_a_folder_is_named(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    (tmp_path / "out.csv").mkdir()
    assert main(["export", str(run), "-o", str(tmp_path / "out.csv")]) == 2
    assert "is a folder" in _one_line(capsys.readouterr().err)
