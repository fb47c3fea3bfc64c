"""`litert-env`: LiteRT's own environment, where models are converted to .tflite
(measure/backends/litert_env.py says why it cannot share this one)."""
from __future__ import annotations

from .args import command


def litert_env_command(args) -> int:
    from ..measure.backends import litert_env
    from pathlib import Path
    target = Path(args.path).expanduser() if args.path else litert_env.env_path()
    print(f"making LiteRT's environment at {target} (over this environment's packages; "
          f"pip install {' '.join(litert_env.PACKAGES)}) ...", flush=True)
    done = litert_env.create(target, quiet=not args.verbose)
    print(f"ready in {done['seconds']:.0f} s: litert-torch {done['litert_torch']}, torch {done['torch']}; "
          + ("sweeps find it there" if not args.path else
             f"point sweeps at it with EDGEPRUNE_LITERT_ENV={target}"))
    return 0


def add(sub) -> None:
    s = command(sub, "litert-env", "make LiteRT's own environment (litert-torch, ai-edge-quantizer), where models "
                "are converted to .tflite: litert-torch pins packages this environment keeps newer", litert_env_command)
    s.add_argument("--path", help="where (default $EDGEPRUNE_LITERT_ENV, else ~/.cache/edgeprune/litert-env)")
    s.add_argument("--verbose", action="store_true", help="show pip's output")
