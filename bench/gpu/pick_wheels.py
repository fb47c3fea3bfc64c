"""Which carried wheels this interpreter needs: prints the path of each wheel whose
distribution is missing here, or installed at a version that another carried wheel
refuses (pydantic-core wants typing-extensions>=4.14.1). A distribution already
installed and good enough is kept, so the GPU machine's own pytest, with its plugins,
runs the tests. Standard library only (packaging, when present, for the version check).

    python3 bench/gpu/pick_wheels.py bench/gpu/carry/wheels
"""
from __future__ import annotations

import importlib.metadata as md
import re
import sys
import zipfile
from pathlib import Path


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(wheels: list[Path]) -> list[str]:
    out = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            out += [line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:") and "extra ==" not in line]
    return out


def refused(dist: str, version: str, reqs: list[str]) -> list[str]:
    """The carried requirements on `dist` that `version` fails."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return []                                    # cannot tell: keep what is installed
    bad = []
    for line in reqs:
        req = Requirement(line)
        if norm(req.name) == dist and (req.marker is None or req.marker.evaluate()) \
                and not req.specifier.contains(version, prereleases=True):
            bad.append(line)
    return bad


def main(folder: str) -> int:
    wheels = sorted(Path(folder).glob("*.whl"))
    reqs = requirements(wheels)
    for wheel in wheels:
        dist = norm(wheel.name.split("-")[0])
        try:
            version = md.version(dist)
        except md.PackageNotFoundError:
            print(wheel)
            continue
        bad = refused(dist, version, reqs)
        if bad:
            print(f"{dist} {version} is installed but a carried wheel wants {bad[0]}: installing "
                  f"{wheel.name}", file=sys.stderr)
            print(wheel)
        else:
            print(f"{dist} {version} is installed: {wheel.name} not needed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "bench/gpu/carry/wheels"))
