"""Prepare bench/gpu/carry/ for the GPU machine: the wheels it lacks, a CIFAR-10 subset
and the ResNet-56 weights, and check that they travel (64 MiB with the working tree).

The GPU machine has Python 3.12 with torch, torchvision, onnx, onnxruntime, jinja2, rich,
matplotlib, pandas (and what they need), and no network. What the GPU checks import
beyond that is found by importing the checks' modules here, and its cp312 wheels are
downloaded at the versions installed here (the versions the project is tested with).

    python bench/gpu/prepare.py [--data-dir ../shared/datasets --models-dir ../shared/models/cifar10]
                                [--train 15000] [--test 5000]

Without --data-dir/--models-dir only the wheels are carried and run.sh skips the search
benchmark. Run it in the checkout the device tool sends (the session's own), then call
the device tool's `run` with the command and `carry` it prints (bench/gpu/README.md).
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CARRY = ROOT / "bench" / "gpu" / "carry"
LIMIT = 64 * 2**20          # the device tool's cap on the working tree plus carried paths
HEADROOM = 8 * 2**20        # left free for the tree to grow and for what comes back

# What the GPU machine has (issue 20, item 6; the device's KINDS.md lists more). Everything
# these need is taken to be there too.
ON_MACHINE = ["torch", "torchvision", "onnx", "onnxruntime", "jinja2", "rich", "matplotlib", "pandas", "numpy"]
# Carried although the machine has them: run.sh installs one only where the machine's copy is
# missing or fails a carried wheel's requirement (pydantic-core wants typing-extensions>=4.14.1).
# pytest runs step 1; the machine's pytest (with its plugins) is kept when present.
ALSO_CARRY = ["typing-extensions", "pytest"]
# The checks' modules, plus the modules they import inside functions (sweep.refine imports
# edgeprune.pareto when called). A module missing here is reported, not fatal: rename it here.
CHECK_FILES = ["bench/gpu/throughput.py", "bench/search_efficiency.py", "tests/test_gpu.py"]
CHECK_MODULES = ["edgeprune.models", "edgeprune.prune", "edgeprune.data", "edgeprune.train",
                 "edgeprune.measure", "edgeprune.measure.backends", "edgeprune.measure.latency", "edgeprune.sweep",
                 "edgeprune.sweep.variants",
                 "edgeprune.sweep.executors", "edgeprune.sweep.refine", "edgeprune.pareto"]
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]

PROBE = r"""
import importlib, importlib.util, json, sys
root, files, modules = json.loads(sys.argv[1])
sys.path[:0] = [root, root + "/bench", root + "/tests"]
missing = []
for i, path in enumerate(files):
    spec = importlib.util.spec_from_file_location(f"_check{i}", root + "/" + path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
for name in modules:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if not e.name.startswith("edgeprune"):
            raise
        missing.append(name)
print(json.dumps({"top": sorted({m.split(".")[0] for m in sys.modules}), "missing": missing}))
"""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requires(dist: str) -> list[str]:
    """The distributions `dist` needs on the GPU machine (markers evaluated for it)."""
    out = []
    for line in md.requires(dist) or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(TARGET):
            out.append(norm(req.name))
    return out


def closure(names) -> set[str]:
    seen, todo = set(), [norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(requires(name))
        except md.PackageNotFoundError:
            pass                                     # e.g. nvidia-* of the CUDA build: not installed here
    return seen


def imported_distributions() -> set[str]:
    """edgeprune's own dependencies whose modules the GPU checks import, found by importing
    them here (not every module in sys.modules: some are optional imports of other packages)."""
    args = json.dumps([str(ROOT), CHECK_FILES, CHECK_MODULES])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, args], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        sys.exit(f"importing the GPU checks here failed: {done.stderr.strip().splitlines()[-1]}")
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    for name in probe["missing"]:
        print(f"note: no module {name} (renamed?): update CHECK_MODULES in {Path(__file__).name}")
    owners = md.packages_distributions()
    with open(ROOT / "pyproject.toml", "rb") as f:         # this tree's, not an installed copy's
        direct = {norm(Requirement(r).name) for r in tomllib.load(f)["project"]["dependencies"]}
    return {norm(d) for top in probe["top"] for d in owners.get(top, [])} & direct


def _installed(dist: str) -> bool:
    try:
        return bool(md.version(dist))
    except md.PackageNotFoundError:
        return False


def download_wheels(dists: list[str], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    installed = [d for d in dists if _installed(d)]
    for d in sorted(set(dists) - set(installed)):
        print(f"note: {d} is needed there but not installed here, so its version is unknown: not carried")
    pins = [f"{d}=={md.version(d)}" for d in installed]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "-d", str(folder), *[a for p in PLATFORMS for a in ("--platform", p)],
           *pins]
    done = subprocess.run(cmd, capture_output=True, text=True)
    # this machine's pip config names local indexes that lack most projects: their warnings are noise
    print("".join(line + "\n" for line in (done.stdout + done.stderr).splitlines()
                  if not line.startswith("WARNING: Location")), end="")
    if done.returncode:
        sys.exit(f"pip could not download {' '.join(pins)} for cp312 manylinux x86_64 (see above)")
    keep = []
    for wheel in sorted(folder.glob("*.whl")):        # one version of each: two stop the install there
        name, version = wheel.name.split("-")[:2]
        if f"{norm(name)}=={version}" in {f"{norm(p.split('==')[0])}=={p.split('==')[1]}" for p in pins}:
            keep.append(wheel)
        else:
            wheel.unlink()
    return keep


def carry_data(args) -> list[Path]:
    """The packed CIFAR-10 subset and the ResNet-56 weights, when their folders are given."""
    if not (args.data_dir and args.models_dir):
        for old in (CARRY / "datasets", CARRY / "models"):
            shutil.rmtree(old, ignore_errors=True)
        print("no --data-dir/--models-dir: no CIFAR-10 carried; run.sh will skip the search benchmark")
        return []
    sys.path.insert(0, str(Path(__file__).parent))
    import cifar_pack
    weights = Path(args.models_dir) / "resnet56-4bfd9763.th"
    if not weights.is_file():
        sys.exit(f"--models-dir {args.models_dir} holds no resnet56-4bfd9763.th")
    packed = CARRY / "datasets" / f"cifar10-subset-{args.train}-{args.test}.npz.xz"
    for old in (CARRY / "datasets").glob("*"):
        if old != packed:
            old.unlink()
    if not packed.is_file():                         # packing takes minutes: done once per size
        print(f"packing {args.train} train + {args.test} test images of CIFAR-10 (a few minutes) ...", flush=True)
        print(cifar_pack.pack(Path(args.data_dir), packed, args.train, args.test))
    (CARRY / "models").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, CARRY / "models" / weights.name)
    return [packed, CARRY / "models" / weights.name]


def travelling_tree() -> int:
    """Bytes of what the device tool sends besides `carry`: tracked and untracked, not ignored."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode().split("\0")
    files = {ROOT / f for f in out if f} | set((ROOT / "shared").rglob("*"))
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="a folder holding cifar-10-batches-py/ (or that folder)")
    p.add_argument("--models-dir", help="a folder holding resnet56-4bfd9763.th")
    p.add_argument("--train", type=int, default=15_000, help="train images carried (the first N, in order)")
    p.add_argument("--test", type=int, default=5_000, help="test images carried (the first N, in order)")
    args = p.parse_args(argv)

    there = closure(ON_MACHINE)
    imported = imported_distributions()
    need = sorted((closure(imported | set(ALSO_CARRY)) - there) | {norm(n) for n in ALSO_CARRY})
    print("the checks import, beyond the machine's packages:", ", ".join(sorted(imported - there)) or "nothing")
    wheels = download_wheels(need, CARRY / "wheels")
    data = carry_data(args)

    tree = travelling_tree()
    rows = [(str(f.relative_to(CARRY)), f.stat().st_size) for f in wheels + data]
    total = tree + sum(size for _, size in rows)
    print(f"\n{'what travels':60s} {'MiB':>7s}")
    print(f"{'the working tree (tracked + untracked, not ignored)':60s} {tree / 2**20:7.2f}")
    for name, size in rows:
        print(f"  carry/{name:52.52s} {size / 2**20:7.2f}")
    print(f"{'total':60s} {total / 2**20:7.2f}   of {LIMIT / 2**20:.0f} MiB "
          f"({100 * total / LIMIT:.0f} %, {(LIMIT - total) / 2**20:.1f} MiB free)")
    if total > LIMIT - HEADROOM:
        sys.exit(f"{total / 2**20:.1f} MiB would travel, over {(LIMIT - HEADROOM) / 2**20:.0f} MiB "
                 f"(64 less {HEADROOM // 2**20} of headroom): carry fewer images (--train/--test)")
    print('\ndevice tool: run(command="bash bench/gpu/run.sh", carry=["bench/gpu/carry"], timeout_s=480)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
