"""Live progress of a sweep: trials done / left and the current trial's epoch."""
from __future__ import annotations

from typing import Optional

from .plan import TrialSpec


class SilentProgress:
    """The progress interface; does nothing (library use, tests)."""

    def start(self, total: int, already_done: int) -> None: ...
    def trial_started(self, spec: TrialSpec) -> None: ...
    def step(self, step: int, total: int, epoch: float, trial_id: Optional[str] = None) -> None: ...
    def trial_finished(self, spec: TrialSpec, status: str, metrics: Optional[dict]) -> None: ...
    def stop(self) -> None: ...


class RichProgress(SilentProgress):
    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=self.console)
        self.sweep_task = None
        self.trial_tasks: dict[str, int] = {}   # running trials, by trial id
        self.names: dict[int, str] = {}
        self.failed = 0

    def start(self, total: int, already_done: int) -> None:
        self.progress.start()
        self.sweep_task = self.progress.add_task("trials", total=total, completed=already_done)

    def trial_started(self, spec: TrialSpec) -> None:
        if spec.trial_id in self.trial_tasks:  # a retry
            self.progress.remove_task(self.trial_tasks.pop(spec.trial_id))
        task = self.progress.add_task(f"  {spec.describe()}", total=None)
        self.trial_tasks[spec.trial_id] = task
        self.names[task] = spec.describe()
        self._describe()

    def step(self, step: int, total: int, epoch: float, trial_id: Optional[str] = None) -> None:
        task = self.trial_tasks.get(trial_id) if trial_id else next(reversed(self.trial_tasks.values()), None)
        if task is not None:
            name = self.names.get(task, "")
            self.progress.update(task, completed=step, total=total, description=f"  {name}  epoch {epoch:.2f}")

    def _describe(self) -> None:
        task = self.progress.tasks[self.progress.task_ids.index(self.sweep_task)]
        left = int(task.total - task.completed) - len(self.trial_tasks)
        self.progress.update(self.sweep_task, description=f"trials: {len(self.trial_tasks)} running, "
                                                          f"{self.failed} failed, {left} waiting")

    def trial_finished(self, spec: TrialSpec, status: str, metrics: Optional[dict]) -> None:
        task = self.trial_tasks.pop(spec.trial_id, None)
        if task is not None:
            self.progress.remove_task(task)
        self.failed += status == "failed"
        if status != "cancelled":
            self.progress.advance(self.sweep_task)
        if status == "done" and metrics:
            self.console.print(f"[green]done[/] {spec.describe()}: acc {metrics['accuracy']:.4f}, "
                               f"params -{metrics['param_reduction']:.1%}, MACs -{metrics['mac_reduction']:.1%}")
        else:
            self.console.print(f"[red]{status}[/] {spec.describe()}")
        self._describe()

    def stop(self) -> None:
        self.progress.stop()
