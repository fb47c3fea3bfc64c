"""The SQLite results store."""
import sqlite3

import pytest

from edgeprune.errors import EdgepruneError
from edgeprune import load_results
from edgeprune.store import ResultStore


def _rows(n=3):
    return [{"trial_id": f"t{i}", "model": "m", "algorithm": "l1", "target_kind": "channels", "rate": 0.1 * i,
             "seed": 0, "spec": {"i": i}} for i in range(n)]


def test_add_is_idempotent_and_ordered(tmp_path):
    with ResultStore(tmp_path) as s:
        assert s.add_trials(_rows(3)) == 3
        assert s.add_trials(_rows(4)) == 1     # only the new one
        assert [t.trial_id for t in s.trials()] == ["t0", "t1", "t2", "t3"]
        assert s.counts()["pending"] == 4


def test_lifecycle_and_resume_set(tmp_path):
    with ResultStore(tmp_path) as s:
        s.add_trials(_rows(5))
        s.mark_running("t0"); s.mark_done("t0", {"accuracy": 0.9, "layer_channels": {"a": [2, 1]}})
        s.mark_running("t1"); s.mark_failed("t1", "RuntimeError: boom")
        s.mark_running("t2")                        # left running by a crash
        s.mark_running("t3"); s.mark_cancelled("t3")
        assert [t.trial_id for t in s.to_run()] == ["t2", "t3", "t4"]
        assert [t.trial_id for t in s.to_run(retry_failed=True)] == ["t1", "t2", "t3", "t4"]
        done = s.trials("done")[0]
        assert done.metrics["accuracy"] == 0.9 and done.attempts == 1
        assert s.trials("failed")[0].error == "RuntimeError: boom"
        assert s.integrity_ok()


def test_each_change_is_committed_immediately(tmp_path):
    s = ResultStore(tmp_path)
    s.add_trials(_rows(1))
    s.mark_running("t0")
    s.mark_done("t0", {"accuracy": 0.5})
    # another connection sees it without s being closed
    other = sqlite3.connect(tmp_path / "results.db")
    assert other.execute("SELECT status FROM trials").fetchone()[0] == "done"
    other.close()
    s.close()


def test_dataframe_and_meta(tmp_path):
    with ResultStore(tmp_path) as s:
        s.add_trials(_rows(2))
        s.mark_running("t0"); s.mark_done("t0", {"accuracy": 0.75, "params": 10, "layer_channels": {}})
        s.set_meta("settings", {"a": 1})
        assert s.get_meta("settings") == {"a": 1}
    df = load_results(tmp_path)
    assert list(df["trial_id"]) == ["t0", "t1"] and df.loc[0, "accuracy"] == 0.75
    assert "layer_channels" not in df.columns


def test_missing_run_folder(tmp_path):
    with pytest.raises(EdgepruneError, match="no results at"):
        load_results(tmp_path / "nothing")
