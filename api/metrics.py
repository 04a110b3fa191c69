"""``GET /metrics``: Prometheus text format, outside ``/api/v1``.

Two parts, rendered one after the other:

- this app's HTTP metrics (``prometheus-fastapi-instrumentator``: requests, latencies and
  sizes by route template) and the process's (CPU, memory, open files), in a registry of
  the app's own (several apps in one process do not collide);
- the service's figures, from the database through ``service.repository.StatsCollector``
  (trial and sweep counts, epochs, runner heartbeats: see that module for why a scrape never
  scans the trials table), plus ``l0sweep_db_errors_total``: the database driver errors
  this process has seen (the API's, and the runner's when it runs in the same process as
  with ``l0sweep serve``; a separate runner process has its own, logged).

Whether a scrape needs a bearer token is ``Settings.metrics_require_token`` (by default:
only in prod).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, FastAPI, Response
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext
from starlette.concurrency import run_in_threadpool

from api.deps import require_token
from api.state import AppState
from service.db import session_scope
from service.repository import EPOCH_SECONDS_BUCKETS, ServiceStats, StatsCollector

__all__ = ["CONTENT_TYPE", "db_errors_seen", "install_metrics"]

log = logging.getLogger("api")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH = "/metrics"


class _DriverErrors:
    """Database driver errors of every engine in this process (a process-wide counter)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._listening = False

    def listen(self) -> None:
        with self._lock:
            if not self._listening:
                event.listen(Engine, "handle_error", self._seen)
                self._listening = True

    def _seen(self, context: ExceptionContext) -> None:
        # A failed pre-ping is the pool replacing a dead connection, not a failed request.
        if not context.is_pre_ping:
            with self._lock:
                self.count += 1


_DRIVER_ERRORS = _DriverErrors()


def db_errors_seen() -> int:
    """Database driver errors this process has seen since ``install_metrics`` first ran."""
    return _DRIVER_ERRORS.count


class _ServiceCollector(Collector):
    """The ``l0sweep_*`` families of one snapshot (None: the database was never reached)."""

    def __init__(self, stats: ServiceStats | None) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            "l0sweep_db_errors", "Database driver errors seen by this process."
        )
        errors.add_metric([], db_errors_seen())
        yield errors
        stats = self.stats
        if stats is None:
            return
        sweeps = GaugeMetricFamily("l0sweep_sweeps", "Sweeps by status.", labels=["status"])
        for status, n in sorted(stats.sweeps.items()):
            sweeps.add_metric([status], n)
        yield sweeps
        trials = GaugeMetricFamily("l0sweep_trials", "Trials by status.", labels=["status"])
        for status, n in sorted(stats.trials.items()):
            trials.add_metric([status], n)
        yield trials
        epochs = CounterMetricFamily("l0sweep_trial_epochs", "Trial-epochs recorded.")
        epochs.add_metric([], stats.epochs.count)
        yield epochs
        h = stats.epochs
        buckets: list[tuple[str, float]] = [
            (_le(bound), n) for bound, n in zip(EPOCH_SECONDS_BUCKETS, h.buckets, strict=True)
        ]
        buckets.append(("+Inf", h.timed))
        seconds = HistogramMetricFamily(
            "l0sweep_trial_epoch_seconds", "Wall time of one trial-epoch (a pack's epoch)."
        )
        seconds.add_metric([], buckets, sum_value=h.seconds)
        yield seconds
        ages = GaugeMetricFamily(
            "l0sweep_runner_heartbeat_age_seconds",
            "Seconds since each registered runner's last heartbeat.",
            labels=["runner"],
        )
        for runner, age in sorted(stats.runner_heartbeat_age_s.items()):
            ages.add_metric([runner], age)
        yield ages


def _le(bound: float) -> str:
    return repr(float(bound))


def install_metrics(app: FastAPI, state: AppState) -> None:
    """Instrument ``app``'s HTTP requests and add the ``GET /metrics`` route."""
    _DRIVER_ERRORS.listen()
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    Instrumentator(registry=registry, excluded_handlers=[METRICS_PATH]).instrument(app)
    collector = StatsCollector(state.settings.metrics_refresh_s)

    def read_session() -> Any:
        return session_scope(state.engine, readonly=True)

    def service_stats() -> ServiceStats | None:
        try:
            return collector.snapshot(read_session)
        except Exception as exc:  # the database is down: serve what we have
            log.warning("metrics: database figures not refreshed: %s", exc)
            return collector.last

    async def metrics() -> Response:
        stats = await run_in_threadpool(service_stats)
        service = CollectorRegistry(auto_describe=False)
        service.register(_ServiceCollector(stats))
        body = generate_latest(registry) + generate_latest(service)
        return Response(content=body, media_type=CONTENT_TYPE)

    # Known when the app is built: the route checks the token or it does not.
    token = [Depends(require_token)] if state.settings.metrics_token_required else []
    app.add_api_route(
        METRICS_PATH,
        metrics,
        methods=["GET"],
        tags=["health"],
        summary="Prometheus metrics",
        description=(
            "HTTP and process metrics of this API process and the service's figures "
            "(l0sweep_*), in Prometheus text format. Needs a bearer token when "
            "L0SWEEP_METRICS_REQUIRE_TOKEN is on (default: in prod)."
        ),
        response_class=Response,
        dependencies=token,
        responses={
            200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
            401: {"description": "Missing or invalid bearer token (when required)"},
        },
    )
    app.state.l0sweep_metrics = collector
