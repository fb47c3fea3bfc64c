# edgeprune image, usable as a sweep driver and as a Ray head or worker node.
#   docker build -t edgeprune:cpu .
#   docker build -t edgeprune:cuda --build-arg VARIANT=cuda .
# Not built in this project's CI (no Docker engine there): keep it minimal.
ARG VARIANT=cpu
FROM python:3.11-slim AS base-cpu
ENV TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS base-cuda
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3-pip python3.11-venv \
    && rm -rf /var/lib/apt/lists/* && ln -sf /usr/bin/python3.11 /usr/local/bin/python
ENV TORCH_INDEX=https://download.pytorch.org/whl/cu128

FROM base-${VARIANT}
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /opt/edgeprune
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install "torch<=2.14.1" "torchvision<=0.29.1" --index-url ${TORCH_INDEX}
COPY pyproject.toml README.md ./
COPY edgeprune ./edgeprune
RUN pip install ".[ray]" "ray[default,client]"
# Ray head: docker run -p 6379:6379 -p 10001:10001 edgeprune:cpu ray start --head --block
# Ray worker: docker run edgeprune:cpu ray start --address=HEAD:6379 --block
CMD ["edgeprune", "--help"]
