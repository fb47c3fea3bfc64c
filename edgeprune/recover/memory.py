"""Peak memory of a stretch of work, where it is cheap to know: CUDA's allocator
peak on a GPU; on Linux CPUs the process's peak resident set (VmHWM), reset at
the start through /proc/self/clear_refs. None where neither is available."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch


class PeakMemory:
    def __init__(self, device: torch.device, reset: bool):
        self.device, self.reset = device, reset

    @classmethod
    def start(cls, device: torch.device) -> "PeakMemory":
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            return cls(device, True)
        try:
            Path("/proc/self/clear_refs").write_text("5")      # resets VmHWM to the present RSS
            return cls(device, True)
        except OSError:
            return cls(device, False)

    def stop(self) -> Optional[float]:
        if not self.reset:
            return None
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None
