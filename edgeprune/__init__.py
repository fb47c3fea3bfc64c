"""edgeprune: find the best compressed CNN for an edge device.

The pipeline, one module per stage:
    config -> models / data -> prune -> train (fine-tune) -> measure -> store -> report
and the sweep engine that runs it over models x algorithms x rates.

    >>> from edgeprune import load_config, run_sweep, load_results
    >>> run_dir = run_sweep(load_config("examples/quickstart.yaml"))
    >>> load_results(run_dir)            # pandas DataFrame, one row per trial
"""
from .config import SweepConfig, load_config
from .errors import CheckpointError, ConfigError, EdgepruneError, OfflineError
from .models import create_model, list_models
from .prune import PruneResult, prune_model
from .report import report
from .store import ResultStore, load_results
from .sweep import run_sweep

__version__ = "0.1.0"
__all__ = ["SweepConfig", "load_config", "create_model", "list_models", "prune_model", "PruneResult",
           "run_sweep", "ResultStore", "load_results", "report", "EdgepruneError", "ConfigError",
           "CheckpointError", "OfflineError", "__version__"]
