"""The sweep: config -> trials -> tasks -> executor (events) -> engine -> store."""
from .context import TrialContext
from .engine import run_sweep
from .plan import TrialSpec, TrialTask, plan_tasks, plan_trials
from .settings import TrialSettings, shared_settings
from .unpruned import UnprunedModel
from .progress import RichProgress, SilentProgress
from .rebuild import trial_model
from .refine import refine
from .trial import TrialOutcome, run_trial

__all__ = ["run_sweep", "plan_trials", "plan_tasks", "shared_settings", "TrialSettings", "TrialSpec", "TrialTask", "run_trial",
           "TrialOutcome", "TrialContext", "UnprunedModel", "RichProgress", "SilentProgress", "trial_model", "refine"]
