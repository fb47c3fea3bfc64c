"""Wall-clock latency at batch 1 on this machine's CPU (PyTorch eager)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class LatencyResult:
    median_ms: float
    p90_ms: float
    threads: int
    repeats: int
    batch_size: int
    input_size: int
    backend: str = "torch-eager"


@torch.inference_mode()
def measure_latency(model: nn.Module, input_size: int, threads: int = 1, warmup: int = 3,
                    repeats: int = 20, batch_size: int = 1, channels_last: bool = False) -> LatencyResult:
    """Median and p90 of `repeats` timed forward passes after `warmup` untimed ones,
    with torch limited to `threads` intra-op threads (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    try:
        x = torch.randn(batch_size, 3, input_size, input_size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return LatencyResult(statistics.median(times), p90, threads, repeats, batch_size, input_size)
