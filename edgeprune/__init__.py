"""edgeprune: find the best compressed CNN for an edge device.

The pipeline, one module per stage:
    config -> models / data -> prune -> train (fine-tune) -> measure -> store -> report
and the sweep engine that runs it over models x algorithms x rates.

    >>> from edgeprune import load_config, run_sweep, load_results
    >>> run_dir = run_sweep(load_config("examples/quickstart.yaml"))
    >>> load_results(run_dir)            # pandas DataFrame, one row per trial
"""
from ._lazy import lazy_getattr
from .errors import CheckpointError, ConfigError, EdgepruneError, OfflineError

__version__ = "0.1.0"

# Imported on first use (PEP 562), so that torch-free parts such as
# `python -m edgeprune.deploy.agent` run on a device without torch installed.
_LAZY = {"SweepConfig": "config", "load_config": "config", "create_model": "models", "list_models": "models",
         "PruneResult": "prune", "prune_model": "prune", "report": "report", "ResultStore": "store",
         "load_results": "store", "run_sweep": "sweep"}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = ["SweepConfig", "load_config", "create_model", "list_models", "prune_model", "PruneResult",
           "run_sweep", "ResultStore", "load_results", "report", "EdgepruneError", "ConfigError",
           "CheckpointError", "OfflineError", "__version__"]
