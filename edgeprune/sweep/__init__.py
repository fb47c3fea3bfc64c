"""The sweep: config -> trials -> executor -> store."""
from .engine import run_sweep
from .executors import EXECUTORS, SweepJob, get_executor
from .plan import BASELINE, TrialSpec, plan_trials
from .progress import RichProgress, SilentProgress
from .rebuild import trial_model
from .trial import TrialContext, execute_trial, run_trial

__all__ = ["run_sweep", "plan_trials", "TrialSpec", "run_trial", "TrialContext", "EXECUTORS",
           "RichProgress", "SilentProgress", "BASELINE", "execute_trial", "trial_model"]
