"""Which tasks may start, and with what: a cascade link or a refinement starts from
its parent's fine-tuned model, so it waits for the parent, and fails with it. Both
executors keep one of these."""
from __future__ import annotations

from typing import Optional

from ...artifacts import exists, read_bytes
from ..events import Failed, Finished
from ..plan import TrialTask


class Lineage:
    def __init__(self, tasks: list[TrialTask], finished: dict[str, dict], sink=None):
        self.finished = finished                      # done trial id -> its stored row (model_path)
        self.sink = sink                              # where a rebuilt parent's model may lie (refine keeps it)
        self.models: dict[str, bytes] = {}            # parents finished in this run
        self.rows: dict[str, dict] = {}
        self.failed: dict[str, str] = {}
        self.children: dict[str, list[TrialTask]] = {}
        for task in tasks:
            if task.parent:
                self.children.setdefault(task.parent, []).append(task)

    def waits(self, task: TrialTask) -> bool:
        """Its parent runs in this sweep and has not finished yet."""
        p = task.parent
        return bool(p) and p not in self.models and p not in self.failed and p not in self.finished

    def parent_of(self, task: TrialTask) -> Optional[tuple[bytes, dict]]:
        """(the parent's model file bytes, its row), or None for a task without one."""
        p = task.parent
        if not p:
            return None
        if p in self.models:
            return self.models[p], self.rows[p]
        row = self.finished.get(p) or {}
        for path in (row.get("model_path"), self.sink and self.sink.model_uri(p)):
            if path and exists(path):
                return read_bytes(path), row
        path = row.get("model_path")
        raise LookupError(f"parent {p}'s model is not kept ({path or 'no model_path'}); rerun it with "
                          "--retry-failed after removing its row, or start another --out")

    def record(self, event) -> list[Failed]:
        """Note a task's end; returns the Failed events of its descendants if it failed."""
        task = event.task
        tid = task.spec.trial_id
        if isinstance(event, Finished):
            if event.model is not None:
                self.models[tid] = event.model
                self.rows[tid] = event.rows.get(tid, {})
            return []
        self.failed[tid] = event.error
        out, stack = [], [(c, tid) for c in self.children.get(tid, [])]
        while stack:
            child, parent = stack.pop(0)
            reason = f"parent {parent} failed: {self.failed[parent]}"
            self.failed[child.spec.trial_id] = self.failed[parent]
            out.append(Failed(child, reason))
            stack += [(c, child.spec.trial_id) for c in self.children.get(child.spec.trial_id, [])]
        return out
