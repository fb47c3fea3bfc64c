"""The sweep: config -> trials -> executor -> store."""
from .engine import EXECUTORS, run_sweep
from .plan import BASELINE, TrialSpec, plan_trials
from .progress import RichProgress, SilentProgress
from .trial import TrialContext, run_trial

__all__ = ["run_sweep", "plan_trials", "TrialSpec", "run_trial", "TrialContext", "EXECUTORS",
           "RichProgress", "SilentProgress", "BASELINE"]
