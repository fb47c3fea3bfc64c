"""Soak: does a long sweep hold steady? 300 tiny trials on Ray with 2 workers.

    nice python bench/soak.py [--trials 300] [--workers 2] [--out bench/results/soak.json]

Trials: a tiny CNN (tests/tiny_models.py's tiny_cnn, random weights) pruned by l1
at --trials rates 0.50000, 0.50001, ...: distinct trials that all do the same work
(the same channels go; varied rates would make the time per trial drift with the
plan order, and later trials would reuse the latency of architectures timed
before). Each is fine-tuned for 2 steps on a CIFAR-format dataset this script
makes (tests/conftest.py's make_cifar) and measured in PyTorch and ONNX Runtime
against the unpruned model, so every trial exports ONNX files to the scratch
folder (its latency is timed once per architecture: the first trial's). Recorded
after trial 10 and after the last one:

  - resident memory (VmRSS) and open file descriptors of the driver and of each
    Ray worker process (descendants of the driver named ray::..., the progress
    tracker actor included);
  - the temporary files: count and bytes under edgeprune's scratch root;
  - time per trial, over the 50 trials after trial 10 and over the last 50: wall
    time between finished trials (driver side), the trials' own trial_seconds
    (worker side), and the CPU seconds the driver and the workers spent per trial
    (what other programs' load on a shared machine does not stretch).

Aims: memory growth under 10 %, no growth in descriptors or files, time per trial
flat within 10 %. After the sweep (executor closed, Ray shut down) the scratch
root must be empty.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_cifar, sweep_config  # noqa: E402

from edgeprune import load_config, run_sweep, scratch  # noqa: E402
from edgeprune.run import RunFolder  # noqa: E402
from edgeprune.sweep import RichProgress, SilentProgress  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _common import write  # noqa: E402

RATE, RATE_STEP = 0.5, 1e-5
SAMPLE_AT = 10
WINDOW = 50


# -- what a process holds (Linux /proc) ---------------------------------------------------------------------------
def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def ray_workers() -> dict[int, str]:
    """This driver's Ray worker processes (its local Ray's), by pid: their names."""
    tree, out, stack = children(), {}, [os.getpid()]
    while stack:
        for child in tree.get(stack.pop(), []):
            stack.append(child)
            try:
                name = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if name.startswith("ray::"):
                out[child] = name
    return out


def role(name: str) -> str:
    if name == "driver":
        return "driver"
    if name.endswith("Agent"):           # Ray's own agents (dashboard, runtime env): not edgeprune's
        return "ray agent"
    return "tracker actor" if "_Tracker" in name else "worker"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: unlike wall time, not stretched by other
    programs' load on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process(pid: int, name: str) -> dict:
    return {"pid": pid, "name": name, "role": role(name), "rss_mb": round(rss_kb(pid) / 1024, 1),
            "open_fds": open_fds(pid), "cpu_s": round(cpu_seconds(pid), 2)}


class Sampler(SilentProgress):
    """The sweep's progress (`inner`: the CLI's RichProgress, its output thrown away,
    or none), which also counts finished trials and samples the processes and the
    scratch folder at trial SAMPLE_AT, every `every` trials, and at the last."""

    def __init__(self, total: int, inner: SilentProgress, every: int):
        self.total, self.inner, self.every = total, inner, every
        self.done, self.finish_times, self.samples, self.series = 0, [], {}, []
        # the windows' ends: CPU time per trial is measured between them
        self.cpu_at: dict[int, float] = {}
        self.marks = {SAMPLE_AT, SAMPLE_AT + WINDOW, total - WINDOW, total}

    def start(self, total: int, already_done: int) -> None:
        self.inner.start(total, already_done)

    def task_started(self, task) -> None:
        self.inner.task_started(task)

    def step(self, trial_id: str, step: int, total: int, epoch: float) -> None:
        self.inner.step(trial_id, step, total, epoch)

    def stop(self) -> None:
        self.inner.stop()

    def task_finished(self, task, results) -> None:
        self.inner.task_finished(task, results)
        for _ in results:
            self.done += 1
            self.finish_times.append(time.perf_counter())
            if self.done in self.marks:
                self.cpu_at[self.done] = self.cpu()
            if self.done in (SAMPLE_AT, self.total) or self.done % self.every == 0:
                sample = self.sample()
                self.series.append({"trial": self.done, "driver_rss_mb": sample["driver"]["rss_mb"],
                                    "worker_rss_mb": [w["rss_mb"] for w in sample["workers"] if w["role"] == "worker"],
                                    "tracker_rss_mb": [w["rss_mb"] for w in sample["workers"]
                                                       if w["role"] == "tracker actor"],
                                    "scratch_files": sample["scratch_files"],
                                    "load_average_1min": sample["load_average_1min"]})
                if self.done in (SAMPLE_AT, self.total):
                    self.samples[self.done] = sample

    def cpu(self) -> float:
        """CPU seconds used so far by the driver and its edgeprune workers."""
        pids = [os.getpid()] + [pid for pid, name in ray_workers().items() if role(name) != "ray agent"]
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass
        return total

    def sample(self) -> dict:
        files, size = scratch.usage()
        workers = []
        for pid, name in sorted(ray_workers().items()):
            try:
                workers.append(process(pid, name))
            except OSError:          # ended meanwhile
                pass
        return {"trial": self.done, "load_average_1min": round(os.getloadavg()[0], 2),
                "driver": process(os.getpid(), "driver"), "workers": workers,
                "scratch_files": files, "scratch_bytes": size}


def per_trial(times: list[float], after: int, window: int) -> float:
    """Wall seconds per finished trial over the `window` trials after trial `after`
    (times[i]: when trial i + 1 finished)."""
    return (times[after + window - 1] - times[after - 1]) / window


def growth(before: float, after: float) -> float:
    return round((after - before) / before, 4) if before else float("nan")


def summarise(first: dict, last: dict) -> dict:
    out = {"driver_rss_growth": growth(first["driver"]["rss_mb"], last["driver"]["rss_mb"]),
           "driver_fds_growth": last["driver"]["open_fds"] - first["driver"]["open_fds"],
           "scratch_files_growth": last["scratch_files"] - first["scratch_files"],
           "scratch_bytes_growth": last["scratch_bytes"] - first["scratch_bytes"]}
    by_pid = {w["pid"]: w for w in first["workers"]}
    out["workers"] = [{"pid": w["pid"], "name": w["name"], "role": w["role"],
                       "rss_growth": growth(by_pid[w["pid"]]["rss_mb"], w["rss_mb"]),
                       "fds_growth": w["open_fds"] - by_pid[w["pid"]]["open_fds"]}
                      for w in last["workers"] if w["pid"] in by_pid]
    out["workers_replaced"] = sorted(set(by_pid) ^ {w["pid"] for w in last["workers"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=300, help="how many trials (default 300)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--progress", choices=["rich", "silent"], default="rich",
                    help="the driver's progress: the CLI's (output thrown away; default) or none")
    ap.add_argument("--every", type=int, default=50, help="also sample every N trials (the series)")
    ap.add_argument("--out", default=None, help="default: bench/results/soak.json (soak-quick.json below 300)")
    args = ap.parse_args()
    total = args.trials
    if total < SAMPLE_AT + 2 * WINDOW:
        ap.error(f"--trials: at least {SAMPLE_AT + 2 * WINDOW} (two windows of {WINDOW} after trial {SAMPLE_AT})")
    rates = [round(RATE + i * RATE_STEP, 6) for i in range(total)]

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        tmp = Path(tmp)
        # a temp dir of its own (the Ray workers inherit it): the scratch root counted is this sweep's only
        (tmp / "tmp").mkdir()
        os.environ["TMPDIR"] = str(tmp / "tmp")
        tempfile.tempdir = None
        data = make_cifar(tmp / "data", n_train=200, n_test=100)
        cfg = sweep_config(data, tmp / "run", models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}],
                           algorithms=["l1"], rates=rates, baseline=False, executor="ray", threads=1,
                           ray={"num_cpus": args.workers, "cpus_per_trial": 1})
        cfg["finetune"] = {"epochs": 1, "max_steps": 2, "batch_size": 16, "lr": 0.01}
        cfg["measure"] = {"latency": ["torch", "onnxruntime"], "latency_repeats": 5, "latency_warmup": 1,
                          "latency_ci": None, "latency_min_seconds": 0, "eval_batch_size": 100}
        inner = SilentProgress()
        if args.progress == "rich":
            inner = RichProgress()
            inner.console.file = open(os.devnull, "w")      # what the CLI draws, drawn nowhere
        sampler = Sampler(total, inner, args.every)
        t0 = time.perf_counter()
        run_sweep(load_config(cfg), progress=sampler)
        wall = time.perf_counter() - t0
        after_files, after_bytes = scratch.usage()
        trials = sorted(RunFolder(tmp / "run").trials(), key=lambda t: t.finished_at or 0)
        assert all(t.status == "done" for t in trials), [(t.status, t.error) for t in trials if t.status != "done"]
        seconds = [t.metrics["trial_seconds"] for t in trials]
        architectures = len({t.metrics.get("arch_signature") for t in trials})

    times = sampler.finish_times
    first, last = sampler.samples[SAMPLE_AT], sampler.samples[total]
    timing = {
        "wall_s_per_trial_start": round(per_trial(times, SAMPLE_AT, WINDOW), 4),
        "wall_s_per_trial_end": round(per_trial(times, total - WINDOW, WINDOW), 4),
        "trial_seconds_median_start": round(statistics.median(seconds[SAMPLE_AT:SAMPLE_AT + WINDOW]), 4),
        "trial_seconds_median_end": round(statistics.median(seconds[-WINDOW:]), 4),
    }
    cpu = sampler.cpu_at
    timing["cpu_s_per_trial_start"] = round((cpu[SAMPLE_AT + WINDOW] - cpu[SAMPLE_AT]) / WINDOW, 4)
    timing["cpu_s_per_trial_end"] = round((cpu[total] - cpu[total - WINDOW]) / WINDOW, 4)
    timing["cpu_change"] = growth(timing["cpu_s_per_trial_start"], timing["cpu_s_per_trial_end"])
    timing["wall_change"] = growth(timing["wall_s_per_trial_start"], timing["wall_s_per_trial_end"])
    timing["trial_seconds_change"] = growth(timing["trial_seconds_median_start"], timing["trial_seconds_median_end"])
    cpu_model = subprocess.run(["sh", "-c", "lscpu | grep 'Model name'"], capture_output=True, text=True).stdout.strip()
    payload = {
        "what": f"{total} tiny trials (tiny_cnn, l1 at rates {RATE}..{rates[-1]}: {architectures} architecture(s), "
                f"2 fine-tuning steps, ONNX Runtime parity and accuracy per trial, latency timed once per "
                f"architecture) on a local Ray instance with {args.workers} workers",
        "cpu": cpu_model, "trials": total, "wall_s": round(wall, 1),
        "progress": args.progress, "at_trial": {str(SAMPLE_AT): first, str(total): last},
        "series": sampler.series,
        "timing": timing, "growth": summarise(first, last),
        "trial_seconds_by_10": [round(statistics.median(seconds[i:i + 10]), 4) for i in range(0, total, 10)],
        "after_sweep": {"scratch_files": after_files, "scratch_bytes": after_bytes},
        "aims": "memory growth < 10 %, no growth in descriptors or files, time per trial flat within 10 %",
    }
    name = "soak" if total >= 300 else "soak-quick"
    path = write(name, payload, args.out)
    g = payload["growth"]
    print(f"{total} trials in {wall:.0f}s; driver RSS {first['driver']['rss_mb']} -> {last['driver']['rss_mb']} MB "
          f"({g['driver_rss_growth']:+.1%}), fds {first['driver']['open_fds']} -> {last['driver']['open_fds']}; "
          f"scratch files {first['scratch_files']} -> {last['scratch_files']}, after the sweep {after_files}")
    for w in g["workers"]:
        print(f"  {w['role']} ({w['name']}) pid {w['pid']}: RSS {w['rss_growth']:+.1%}, fds {w['fds_growth']:+d}")
    print(f"  s/trial (wall) {timing['wall_s_per_trial_start']} -> {timing['wall_s_per_trial_end']} "
          f"({timing['wall_change']:+.1%}); trial_seconds median {timing['trial_seconds_median_start']} -> "
          f"{timing['trial_seconds_median_end']} ({timing['trial_seconds_change']:+.1%}); CPU s/trial (driver + "
          f"workers) {timing['cpu_s_per_trial_start']} -> {timing['cpu_s_per_trial_end']} ({timing['cpu_change']:+.1%})")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
