"""LiteRT's own environment: where models are converted to .tflite.

litert-torch (torch -> .tflite) and ai-edge-quantizer (int8) pull in litert-converter,
which pins xdsl 0.28, which pins typing-extensions < 4.13, which holds pydantic at 2.11:
installed beside edgeprune, they would downgrade what edgeprune's other users get
(apache-tvm-ffi wants typing-extensions >= 4.13). So they get a virtual environment of
their own, made once by `edgeprune litert-env`: it sees this environment's packages
(torch is not installed twice) and adds litert-torch over them. Conversions run there as
a subprocess (litert_convert.py, a script that imports neither edgeprune nor pydantic);
the interpreter that times and checks a .tflite file (ai-edge-litert) has no such pin
and runs here, in the `litert` extra.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from ...errors import EdgepruneError

PACKAGES = ("litert-torch>=0.10,<0.11",)      # ai-edge-quantizer and litert-converter come with it
READY = ".edgeprune-litert-ready"                # written when the install finished
SETUP = "edgeprune litert-env"


def env_path() -> Path:
    """$EDGEPRUNE_LITERT_ENV, else ~/.cache/edgeprune/litert-env."""
    given = os.environ.get("EDGEPRUNE_LITERT_ENV")
    if given:
        return Path(given).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "edgeprune" / "litert-env"


def _python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def converter_python() -> Optional[str]:
    """The Python that converts: this one when litert-torch is installed here (a user's
    own environment), else LiteRT's environment's when it was made; None otherwise."""
    if importlib.util.find_spec("litert_torch") and importlib.util.find_spec("ai_edge_quantizer"):
        return sys.executable
    env = env_path()
    if (env / READY).is_file() and _python(env).is_file():
        return str(_python(env))
    return None


def missing_converter() -> Optional[str]:
    if converter_python():
        return None
    return (f"litert converts models with litert-torch, which cannot share this environment (it pins "
            f"typing-extensions < 4.13): run `{SETUP}` once (a virtual environment at {env_path()}, about "
            "1 GB, a minute or two)")


def create(env: Optional[Path] = None, python: str = sys.executable, quiet: bool = False) -> dict:
    """Make LiteRT's environment at `env` (default env_path()): a venv over this
    environment's packages, with litert-torch added. Returns what it did."""
    env = Path(env or env_path())
    start = time.perf_counter()
    if env.exists() and not (env / READY).is_file():
        shutil.rmtree(env)            # a half-made one (interrupted): start again
    if not env.exists():
        env.parent.mkdir(parents=True, exist_ok=True)
        _run([python, "-m", "venv", "--system-site-packages", str(env)], "making the virtual environment")
    _run([str(_python(env)), "-m", "pip", "install", *(["-q"] if quiet else []), *PACKAGES],
         f"pip install {' '.join(PACKAGES)} in {env}")
    check = _run([str(_python(env)), "-c", "import litert_torch, ai_edge_quantizer, ai_edge_litert, torch; "
                  "import json; print(json.dumps({'litert_torch': getattr(litert_torch, '__version__', '?'), "
                  "'torch': torch.__version__}))"], "checking the environment")
    (env / READY).write_text(check.strip().splitlines()[-1] + "\n")
    return {"path": str(env), "seconds": time.perf_counter() - start, **json.loads(check.strip().splitlines()[-1])}


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).split())[-300:]
        raise EdgepruneError(f"litert-env: {what} failed: {tail}")
    return done.stdout


def convert(job: dict, timeout: float = 1800) -> dict:
    """Run litert_convert.py on `job` with the converting Python; its result, or one line."""
    python = converter_python()
    if python is None:
        raise EdgepruneError(missing_converter())
    job_file = Path(job["fp32"]).with_suffix(".job.json")
    job_file.write_text(json.dumps(job))
    script = Path(__file__).with_name("litert_convert.py")
    try:
        done = subprocess.run([python, str(script), str(job_file)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgepruneError(f"litert: converting the model took more than {timeout:.0f} s") from None
    finally:
        job_file.unlink(missing_ok=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": " ".join(done.stderr.split())[-300:] or "no output"}
    if "error" in result:
        raise EdgepruneError(f"litert-torch could not convert the model: {result['error']}")
    return result
