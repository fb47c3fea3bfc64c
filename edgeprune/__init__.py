"""edgeprune: find the best compressed CNN for an edge device.

The pipeline, one module per stage:
    config -> models / data -> prune -> train (fine-tune) -> measure -> deploy -> store
    -> sweep (plan, trials, executors, engine) -> report / recommend / release
Every pluggable part is a registry (edgeprune.registry) that plugins extend
(edgeprune.plugins).

    >>> from edgeprune import load_config, run_sweep, load_results
    >>> run_dir = run_sweep(load_config("examples/quickstart.yaml"))
    >>> load_results(run_dir)            # pandas DataFrame, one row per trial
"""
from ._lazy import lazy_getattr
from .errors import CheckpointError, ConfigError, EdgepruneError, OfflineError, RunError

__version__ = "0.2.0"

# Imported on first use (PEP 562), so that torch-free parts such as
# `python -m edgeprune.agent` run on a device without torch installed.
_LAZY = {"SweepConfig": "config", "load_config": "config", "create_model": "models", "list_models": "models",
         "PruneResult": "prune", "prune_model": "prune", "report": "report", "ResultStore": "store",
         "load_results": "results", "run_sweep": "sweep", "RunFolder": "run", "trial_model": "sweep",
         "release_trial": "release", "load_model": "prune.saved"}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = ["SweepConfig", "load_config", "create_model", "list_models", "prune_model", "PruneResult",
           "run_sweep", "ResultStore", "load_results", "report", "RunFolder", "trial_model", "release_trial",
           "load_model", "EdgepruneError", "ConfigError", "CheckpointError", "OfflineError", "RunError", "__version__"]
