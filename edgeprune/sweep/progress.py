"""Live progress of a sweep: trials done / left and each running task's epoch."""
from __future__ import annotations

from typing import Optional

from .plan import TrialTask


def escape(text: str) -> str:
    """`text` printed as written (rich reads "[...]" as markup and drops it)."""
    from rich.markup import escape as rich_escape      # rich is imported only where output is drawn
    return rich_escape(text)

# results of a task: (spec, status, metrics or None) for each of its rows
Results = list


class SilentProgress:
    """The progress interface; does nothing (library use, tests)."""

    def start(self, total: int, already_done: int) -> None: ...
    def note(self, text: str) -> None: ...
    def task_started(self, task: TrialTask) -> None: ...
    def step(self, trial_id: str, step: int, total: int, epoch: float) -> None: ...
    def task_finished(self, task: TrialTask, results: Results) -> None: ...
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
        self.bars: dict[str, int] = {}   # running tasks' bars, by their first trial id
        self.rows: dict[str, int] = {}   # ... and how many trials each runs
        self.names: dict[int, str] = {}
        # bars of finished tasks, hidden, for the next ones: rich keeps what it drew of each bar
        # (its columns' caches) even after the bar is removed, so a long sweep reuses a few
        self.free: list[int] = []
        self.failed = 0

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note[/] {escape(text)}", highlight=False)

    def start(self, total: int, already_done: int) -> None:
        self.progress.start()
        self.sweep_task = self.progress.add_task("trials", total=total, completed=already_done)

    def task_started(self, task: TrialTask) -> None:
        key = task.trial_ids[0]
        if key in self.bars:  # a retry
            self._drop(key)
        name = escape(task.spec.describe() + (f" (+ {', '.join(v.quantize for v in task.variants)})"
                                              if task.variants else ""))
        if self.free:
            bar = self.free.pop()
            self.progress.reset(bar, description=f"  {name}", visible=True)
            next(t for t in self.progress.tasks if t.id == bar).total = None     # no steps known yet
        else:
            bar = self.progress.add_task(f"  {name}", total=None)
        self.bars[key], self.rows[key], self.names[bar] = bar, len(task.trial_ids), name
        self._describe()

    def step(self, trial_id: str, step: int, total: int, epoch: float) -> None:
        bar = self.bars.get(trial_id)
        if bar is not None:
            self.progress.update(bar, completed=step, total=total,
                                 description=f"  {self.names.get(bar, '')}  epoch {epoch:.2f}")

    def _describe(self) -> None:
        t = self.progress.tasks[self.progress.task_ids.index(self.sweep_task)]
        running = sum(self.rows.get(k, 1) for k in self.bars)
        left = int(t.total - t.completed) - running
        self.progress.update(self.sweep_task, description=f"trials: {running} running, {self.failed} failed, "
                                                          f"{left} waiting")

    def _drop(self, key: str) -> None:
        """Forget a task's bar (what a long sweep would otherwise pile up)."""
        bar = self.bars.pop(key, None)
        self.rows.pop(key, None)
        if bar is not None:
            self.names.pop(bar, None)
            self.progress.update(bar, visible=False)
            self.free.append(bar)

    def task_finished(self, task: TrialTask, results: Results) -> None:
        self._drop(task.trial_ids[0])
        for spec, status, metrics in results:
            self.failed += status == "failed"
            if status != "cancelled":
                self.progress.advance(self.sweep_task)
            self.console.print(_line(spec, status, metrics))
        self._describe()

    def stop(self) -> None:
        self.progress.stop()


def _line(spec, status: str, metrics: Optional[dict]) -> str:
    if status == "done" and metrics:
        cost = (f", params -{metrics['param_reduction']:.1%}, MACs -{metrics['mac_reduction']:.1%}"
                if "param_reduction" in metrics else "")
        return f"[green]done[/] {escape(spec.describe())}: acc {metrics['accuracy']:.4f}{cost}"
    return f"[red]{status}[/] {escape(spec.describe())}"
