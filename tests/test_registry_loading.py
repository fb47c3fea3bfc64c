"""Each registry loads only its own built-ins: validating a config knows every name
(latency backends, variants, executors included) without importing the sweep,
deployment or measuring code, which sit above the config."""
import subprocess
import sys

import pytest

SCRIPT = """
import sys
from edgeprune.config import load_config
load_config({"models": ["resnet20"], "algorithms": ["l1", "fpgm"], "executor": "ray", "quantize": ["none", "int8"],
             "measure": {"latency": ["onnxruntime", "ov", {"device": "http://127.0.0.1:1"}]},
             "finetune": {"optimizer": "adamw"}}, check_data=False)
print(",".join(sorted(m for m in sys.modules if m.startswith("edgeprune."))))
"""


def _modules(script: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(out.strip().split(","))


@pytest.mark.slow
def test_validating_a_config_imports_neither_sweep_nor_deploy_nor_measure():
    loaded = _modules(SCRIPT)
    assert "edgeprune.config" in loaded
    above = sorted(m for m in loaded if m.startswith(("edgeprune.sweep", "edgeprune.deploy", "edgeprune.measure",
                                                       "edgeprune.report", "edgeprune.release")))
    assert not above, above


@pytest.mark.slow
def test_reading_one_registry_imports_only_its_own_stage():
    loaded = _modules("import sys\nfrom edgeprune.registry import OPTIMIZERS\nassert 'sgd' in OPTIMIZERS\n"
                      "print(','.join(sorted(m for m in sys.modules if m.startswith('edgeprune.'))))")
    assert "edgeprune.train" in loaded
    assert not [m for m in loaded if m.startswith(("edgeprune.prune", "edgeprune.sweep", "edgeprune.deploy",
                                                   "edgeprune.measure"))], loaded


def test_lazy_entries_resolve_and_a_plugin_cannot_take_a_builtin_name():
    import pytest

    from edgeprune.errors import EdgepruneError
    from edgeprune.measure.backends.onnxruntime import OnnxRuntime
    from edgeprune.registry import LATENCY_BACKENDS
    assert "ort" in LATENCY_BACKENDS and LATENCY_BACKENDS.get("ort") is OnnxRuntime
    with pytest.raises(EdgepruneError, match="registered twice"):
        LATENCY_BACKENDS.add("openvino", object, plugin=True)



def test_the_top_level_report_function_survives_importing_its_package(tmp_path):
    """`edgeprune.report` names both the function and the subpackage: either way it reports."""
    from fake_runs import make_run

    import edgeprune
    import edgeprune.recommend  # noqa: F401  (imports the report package: edgeprune.report is now the package)
    run = make_run(tmp_path / "run")
    files = edgeprune.report(run, tmp_path / "out", figures=False)
    assert files[-1].name == "report.html" and files[-1].is_file()
