"""`edgeprune export RUN --mlflow`: every trial a nested MLflow run; again updates."""
from pathlib import Path
from urllib.parse import urlparse

import pytest

from edgeprune import load_config, run_sweep
from edgeprune.cli import main

from conftest import force_status, sweep_config

mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install 'edgeprune[mlflow]'")
pytest.importorskip("sqlalchemy", reason="MLflow's sqlite store needs sqlalchemy (the mlflow extra)")


@pytest.mark.slow
def test_export_logs_trials_once_and_updates(tiny_cifar, tmp_path, capsys):
    from mlflow.tracking import MlflowClient
    run = tmp_path / "run"
    run_sweep(load_config(sweep_config(tiny_cifar, run, rates=[0.3, 0.6])))
    from edgeprune import RunFolder
    first = RunFolder(run).trials()[1]
    force_status(run, first.trial_id, "pending")          # as if still to run
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["export", str(run), "--mlflow", uri]) == 0
    assert "3 trial run(s) logged" in capsys.readouterr().out
    force_status(run, first.trial_id, "done")             # it has run since
    assert main(["export", str(run), "--mlflow", uri]) == 0
    assert "0 trial run(s) logged, 1 updated, 2 already final" in capsys.readouterr().out
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 3 and parents[0].info.status == "FINISHED"
    assert all(r.info.status == "FINISHED" for r in children)
    by_id = {r.data.tags["edgeprune.trial_id"]: r for r in children}
    done = by_id[first.trial_id]
    assert done.data.params["algorithm"] == "l1" and float(done.data.params["rate"]) == first.rate
    assert done.data.metrics["accuracy"] == first.metrics["accuracy"]
    assert len(client.get_metric_history(done.info.run_id, "accuracy")) == 1      # not logged twice
    assert "model_card.md" in [a.path for a in client.list_artifacts(done.info.run_id)]
    assert "report" in [a.path for a in client.list_artifacts(parents[0].info.run_id)]
    # artifacts lie beside the database, not in ./mlruns of the folder the export ran in
    artifacts = Path(urlparse(done.info.artifact_uri).path)
    assert artifacts.is_relative_to(tmp_path / "mlruns") and (artifacts / "model_card.md").is_file()
    print("\n".join(f"{r.info.run_name}: {r.info.status} accuracy={r.data.metrics.get('accuracy')}" for r in runs))
