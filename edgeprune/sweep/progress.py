"""Live progress of a sweep: trials done / left and the current trial's epoch."""
from __future__ import annotations

from typing import Optional

from .plan import TrialSpec


class SilentProgress:
    """The progress interface; does nothing (library use, tests)."""

    def start(self, total: int, already_done: int) -> None: ...
    def trial_started(self, spec: TrialSpec) -> None: ...
    def step(self, step: int, total: int, epoch: float) -> None: ...
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
        self.sweep_task = self.trial_task = None
        self.failed = 0

    def start(self, total: int, already_done: int) -> None:
        self.progress.start()
        self.sweep_task = self.progress.add_task("trials", total=total, completed=already_done)

    def trial_started(self, spec: TrialSpec) -> None:
        self.trial_task = self.progress.add_task(f"  {spec.describe()}", total=None)

    def step(self, step: int, total: int, epoch: float) -> None:
        if self.trial_task is not None:
            self.progress.update(self.trial_task, completed=step, total=total,
                                 description=f"  epoch {epoch:.2f}")

    def trial_finished(self, spec: TrialSpec, status: str, metrics: Optional[dict]) -> None:
        if self.trial_task is not None:
            self.progress.remove_task(self.trial_task)
            self.trial_task = None
        self.failed += status == "failed"
        self.progress.advance(self.sweep_task)
        if status == "done" and metrics:
            self.console.print(f"[green]done[/] {spec.describe()}: acc {metrics['accuracy']:.4f}, "
                               f"params -{metrics['param_reduction']:.1%}, MACs -{metrics['mac_reduction']:.1%}")
        else:
            self.console.print(f"[red]{status}[/] {spec.describe()}")
        self.progress.update(self.sweep_task, description=f"trials ({self.failed} failed)" if self.failed
                             else "trials")

    def stop(self) -> None:
        self.progress.stop()
