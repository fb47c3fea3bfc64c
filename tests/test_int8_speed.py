"""Honest speed: an int8 file slower than its fp32 twin is flagged in its row, marked
by `show`, the report and `recommend`; the CPU's int8 instructions go with every
latency figure."""
from __future__ import annotations

import io

import yaml
from rich.console import Console

from edgeprune.measure.cpu_features import cpu_int8
from edgeprune.measure.int8_speed import speed_against_twin
from edgeprune.recommend import recommend
from edgeprune.report import report
from edgeprune.report.table import print_trials
from edgeprune.store import ResultStore
from fake_runs import metrics_for, trial_id

X86 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu avx512_vnni\n"


def test_cpu_int8_names_the_dot_product_instructions():
    assert cpu_int8(X86) == "AVX512-VNNI"
    assert cpu_int8("flags : avx2 amx_int8 amx_tile avx512_vnni avx_vnni\n") == "AMX-INT8+AVX512-VNNI+AVX-VNNI"
    assert cpu_int8("flags : fpu sse4_2 avx2 fma\n") == "none"                # AVX2 only: u8 x s8 widens
    assert cpu_int8("Features\t: fp asimd evtstrm asimddp i8mm\nCPU part\t: 0xd0b\n") == "Arm-I8MM+Arm-DOTPROD"
    assert cpu_int8("Features\t: fp asimd evtstrm\n") == "none"                 # a Cortex-A53
    assert cpu_int8("") == "unknown"
    assert cpu_int8() in {"unknown", "none"} or "VNNI" in cpu_int8() or "Arm" in cpu_int8() or "AMX" in cpu_int8()


def test_speed_against_twin_uses_the_paired_figures():
    twin = {"latency_backend": "onnxruntime", "latency_onnxruntime_ms": 1.0, "latency_onnxruntime_relative": 0.50,
            "latency_openvino_ms": 2.0, "latency_openvino_p90_ms": 2.5}
    row = {"latency_backend": "onnxruntime", "latency_onnxruntime_ms": 0.9, "latency_onnxruntime_relative": 0.55,
           "latency_onnxruntime_p90_ms": 1.2, "latency_openvino_ms": 1.0}
    out = speed_against_twin(row, twin)
    # paired: 0.55 / 0.50, although its own median (0.9 ms) looked faster than the twin's (1.0 ms)
    assert abs(out["latency_onnxruntime_vs_fp32"] - 1.1) < 1e-9 and out["int8_slower"] is True
    assert abs(out["int8_vs_fp32"] - 1.1) < 1e-9
    assert out["latency_openvino_vs_fp32"] == 0.5                     # no paired figures: the medians
    assert out["int8_slower_on"] == "onnxruntime ×1.10"
    faster = speed_against_twin({**row, "latency_onnxruntime_relative": 0.3}, twin)
    assert faster["int8_slower"] is False and "int8_slower_on" not in faster


def _run_with_a_slower_int8(path):
    """A baseline, an l1 trial and its int8 variant, which is smaller and (by its own
    median) faster, but slower than the fp32 twin in the paired timing."""
    rows, metrics = [], []
    for algo, rate, q in (("none", 0.0, "none"), ("l1", 0.5, "none"), ("l1", 0.5, "int8")):
        tid = trial_id("int8speed", algo, rate, q)
        model = "resnet20" + (" int8" if q == "int8" else "")
        rows.append({"trial_id": tid, "model": model, "algorithm": algo, "target_kind": "channels", "rate": rate,
                     "seed": 0, "spec": {"model": {"name": "resnet20"}, "algorithm": algo, "rate": rate,
                                         "quantize": q, "settings": {}}})
        m = metrics_for("resnet20", algo, "channels", rate, 0)
        m.update(latency_backend="onnxruntime", cpu_int8="AVX512-VNNI", quantize=q)
        metrics.append(m)
    fp32, int8 = metrics[1], metrics[2]
    int8.update(fp32_trial_id=rows[1]["trial_id"], size_bytes=fp32["size_bytes"] // 4,
                latency_ms=fp32["latency_ms"] * 0.98, latency_onnxruntime_relative=0.60)
    fp32["latency_onnxruntime_relative"] = 0.55
    int8.update(speed_against_twin({**int8, "latency_onnxruntime_ms": int8["latency_ms"]},
                                   {**fp32, "latency_onnxruntime_ms": fp32["latency_ms"]}))
    with ResultStore(path) as store:
        store.add_trials(rows)
        for row, m in zip(rows, metrics):
            store.mark_running(row["trial_id"])
            store.mark_done(row["trial_id"], m)
    (path / "config.yaml").write_text(yaml.safe_dump({"name": "int8speed", "models": ["resnet20"]}))
    return path, rows


def test_a_slower_int8_is_flagged_in_show_the_report_and_recommend(tmp_path):
    run, rows = _run_with_a_slower_int8(tmp_path / "run")
    with ResultStore(run, create=False) as store:
        trials = store.trials()
    assert trials[2].metrics["int8_slower"] is True
    out = io.StringIO()
    print_trials(trials, console=Console(file=out, width=200), wide=True)
    text = out.getvalue()
    assert "int8 slower" in text and "onnxruntime ×1.09" in text and rows[1]["trial_id"][:8] in text
    assert " !" in text                                       # its latency cell is marked
    html = report(run, tmp_path / "report", figures=False)[-1].read_text()
    assert "int8 slower than its fp32 twin" in html and "onnxruntime ×1.09" in html and "AVX512-VNNI" in html
    # by its median the int8 file ranks first on latency: recommend says it is slower than its twin
    rec = recommend(run, objective="latency")
    assert rec.best["trial_id"] == rows[2]["trial_id"]
    assert any("SLOWER than its fp32 twin" in n and "meets the budget too" in n for n in rec.notes), rec.notes
    assert "SLOWER" in rec.format(200) and " !" in rec.format(200)
    # its twin ruled out by a size budget: the note says so
    rec = recommend(run, objective="latency", max_size_bytes=trials[2].metrics["size_bytes"])
    assert any("does not meet the budget" in n for n in rec.notes), rec.notes
    # accuracy objective without a latency budget: no note about speed
    assert not any("SLOWER" in n for n in recommend(run).notes)
