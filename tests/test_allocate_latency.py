"""Latency allocation against measured time: a `{latency_ms: x}` target is met within
5 % in ONNX Runtime and on a device agent (loopback), the prediction error stored;
`recommend` answers "the most accurate under x ms" from allocated trials."""
from __future__ import annotations

import threading

import pytest

from edgeprune import load_config, run_sweep
from edgeprune.agent import make_server
from edgeprune.recommend import recommend
from edgeprune.store import ResultStore

from conftest import sweep_config

pytestmark = pytest.mark.slow        # sensitivity maps, latency models and timed searches
TOKEN = "alloc-token-0123456789abcdef"


@pytest.fixture(scope="module")
def agent_url():
    server = make_server("127.0.0.1", 0, TOKEN, quiet=True, max_upload_mb=5.0, bench_timeout=60, read_timeout=10)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _sweep(data, out, latency, share: float):
    """resnet20 (random weights) and its trials at `share` of the unpruned model's
    latency, uniform and latency-allocated; the target in ms from the baseline trial."""
    base = dict(algorithms=["l1"], allocation=["uniform", "latency"], rates=[0.3],
                finetune={"epochs": 1, "max_steps": 0, "batch_size": 32}, prune={"reconstruct": 0},
                allocate={"widths": [0.25, 0.5], "images": 32, "round_to": 1},
                measure={"latency": [latency], "latency_repeats": 30, "latency_warmup": 5, "eval_batch_size": 100,
                         "latency_min_seconds": 0}, threads=1)
    run_sweep(load_config(sweep_config(data, out, **base)))
    with ResultStore(out, readonly=True) as store:
        unpruned = next(t for t in store.trials() if t.algorithm == "none").metrics["latency_ms"]
    target = round(share * unpruned, 4)
    cfg = sweep_config(data, out, **{**base, "rates": [0.3, {"latency_ms": target}]})
    run_sweep(load_config(cfg), extend=True)
    with ResultStore(out, readonly=True) as store:
        return target, {(t.algorithm, t.spec["target_kind"]): t for t in store.trials()}


@pytest.mark.parametrize("where", ["onnxruntime", "agent"])
def test_a_latency_target_is_met_within_5_percent_of_measured_time(tiny_cifar, tmp_path, where, agent_url,
                                                                   monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_AGENT_TOKEN", TOKEN)
    latency = "onnxruntime" if where == "onnxruntime" else {"device": agent_url}
    target, trials = _sweep(tiny_cifar, tmp_path / "run", latency, 0.6)
    allocated = trials[("l1+latency", "latency_ms")]
    assert allocated.status == "done", allocated.error
    m = allocated.metrics
    assert m["latency_search_ms"] == pytest.approx(target, rel=0.05)         # what the search measured
    assert m["latency_target_ms"] == target and m["allocation_widths"]
    # both searches turn the target into a share of one figure: the baseline trial's timing
    uniform = trials[("l1", "latency_ms")].metrics
    baseline = trials[("none", "channels")].metrics
    assert m["latency_scale"] == uniform["latency_scale"] == "run"
    assert m["latency_unpruned_ms"] == pytest.approx(baseline["latency_ms"], rel=0.2)
    assert uniform["latency_unpruned_ms"] == pytest.approx(baseline["latency_ms"], rel=0.2)
    assert abs(m["latency_prediction_error"]) < 1.0 and m["latency_predicted_ms"] > 0      # stored, finite
    # recommend: the most accurate model under the target, allocated trials among the candidates
    rec = recommend(tmp_path / "run", max_latency_ms=target * 1.1)
    assert "l1+latency" in set(rec.candidates["algorithm"])
    assert rec.best is not None and rec.best["latency_ms"] <= target * 1.1
