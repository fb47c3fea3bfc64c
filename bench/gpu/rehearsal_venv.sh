#!/usr/bin/env bash
# A Python 3.12 venv holding what the GPU machine holds for these checks, and nothing more:
# torch 2.11, torchvision 0.26, numpy, onnx, onnxruntime, jinja2, rich, matplotlib, pandas
# (versions as the device's KINDS.md lists them); no pydantic, torch-pruning, PyYAML, plotly,
# pytest or ray, which run.sh installs from bench/gpu/carry/wheels as it would there.
# `PATH=VENV/bin:$PATH bash bench/gpu/run.sh --dry-run` then rehearses the device run.
#
#   bash bench/gpu/rehearsal_venv.sh [VENV]          (default /work/gpu-venv; ~5 GB, a few minutes)
set -euo pipefail
VENV=${1:-/work/gpu-venv}
PY312=${PYTHON312:-}
if [[ -z $PY312 ]]; then   # a pyenv shim named python3.12 may exist and still refuse to run: try each
    for c in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
        if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then PY312=$c; break; fi
    done
fi
[[ -n $PY312 ]] || { echo "no Python 3.12 found: set PYTHON312=/path/to/python3.12" >&2; exit 1; }
echo "making $VENV with $PY312"
"$PY312" -m venv "$VENV"
# PyPI's x86_64 torch is the CUDA build: without its nvidia-* libraries it does not import
# (libcudnn.so.9 not found), so they come along; on a CPU it runs on the CPU.
"$VENV/bin/python" -m pip install -q "torch==2.11.0" "torchvision==0.26.0" "numpy==2.5.2" "onnx==1.23.1" \
    "onnxruntime==1.30.0" jinja2 rich matplotlib pandas
"$VENV/bin/python" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
for name in pydantic torch_pruning yaml plotly pytest ray; do
    if "$VENV/bin/python" -c "import $name" 2>/dev/null; then echo "note: $name is in $VENV, so the rehearsal does not prove that run.sh installs it"; fi
done
