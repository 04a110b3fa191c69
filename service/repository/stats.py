"""The service's own figures for ``GET /metrics``, kept cheap on a large database.

Epochs are written by the runner and ``/metrics`` is served by the API, often in another
process on another machine, so every figure is derived from the database, never from
in-process counters (DB errors excepted: those are the API process's own, see ``api``).
A scrape never scans the ``trials`` or ``trial_epochs`` tables:

- trial counts by status are kept per sweep: a sweep that finished more than ``settle_s``
  ago keeps its counts (re-counted only when its ``results_version`` moves); only open and
  just-finished sweeps are counted, from the ``(sweep_id, status)`` index. A full recount
  every ``recount_s`` bounds any drift (e.g. a trial marked failed long after a cancel);
- epochs are append-only rows with increasing ids: each refresh reads only the rows above a
  watermark, which trails the newest row by ``epoch_settle_s`` (on PostgreSQL concurrent
  writers may commit ids out of order; a write is assumed to commit within that time). The
  first refresh aggregates the older rows in the database, once;
- figures are recomputed at most once per ``refresh_s``; scrapes in between are served the
  last snapshot, and a failed refresh serves the previous one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.models import Runner, Sweep, Trial, TrialEpoch
from service.repository.runners import database_now
from service.vocabulary import FINISHED_SWEEP_STATUSES, SweepStatus, TrialStatus

__all__ = ["EPOCH_SECONDS_BUCKETS", "EpochHistogram", "ServiceStats", "StatsCollector"]

#: Upper bounds (seconds) of the ``l0sweep_trial_epoch_seconds`` histogram: a fused MLP
#: epoch on a GPU takes well under a second, a WRN-28-10 epoch on CIFAR minutes.
EPOCH_SECONDS_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass
class EpochHistogram:
    """Recorded trial-epochs: all of them, and the timed ones by duration."""

    count: int = 0  # every recorded epoch
    timed: int = 0  # epochs with a duration
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(EPOCH_SECONDS_BUCKETS))

    def add(self, seconds: float | None) -> None:
        self.count += 1
        if seconds is None or not math.isfinite(seconds):
            return
        self.timed += 1
        self.seconds += seconds
        for i, bound in enumerate(EPOCH_SECONDS_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1

    def copy(self) -> EpochHistogram:
        return EpochHistogram(self.count, self.timed, self.seconds, list(self.buckets))


@dataclass(frozen=True)
class ServiceStats:
    """One snapshot: counts by status (every status present), epochs, runner heartbeats."""

    sweeps: dict[str, int]
    trials: dict[str, int]
    epochs: EpochHistogram
    runner_heartbeat_age_s: dict[str, float]
    refreshed_at: datetime


@dataclass
class _SweepCounts:
    key: tuple[str, int]  # (status, results_version) when counted
    counts: dict[str, int]


class StatsCollector:
    """The snapshot behind ``/metrics``, refreshed incrementally; one per API app.

    Args:
        refresh_s: A snapshot younger than this is served as is.
        settle_s: How long after finishing a sweep's counts may still change.
        recount_s: Every this often, all trials are counted again.
        epoch_settle_s: How long an epoch row may take to commit after it was stamped.
    """

    def __init__(
        self,
        refresh_s: float = 5.0,
        *,
        settle_s: float = 300.0,
        recount_s: float = 900.0,
        epoch_settle_s: float = 30.0,
    ) -> None:
        self.refresh_s = refresh_s
        self.settle_s = settle_s
        self.recount_s = recount_s
        self.epoch_settle_s = epoch_settle_s
        self._lock = threading.Lock()
        self._snapshot: ServiceStats | None = None
        self._refreshed = -math.inf  # time.monotonic() of the last refresh
        self._recounted = -math.inf
        self._per_sweep: dict[int, _SweepCounts] = {}
        # Epoch rows with id <= _settled_id are in _settled; newer ones seen are in _recent.
        self._settled_id: int | None = None
        self._settled = EpochHistogram()
        self._recent: dict[int, tuple[float | None, datetime]] = {}

    def snapshot(
        self, session_factory: Callable[[], AbstractContextManager[Session]]
    ) -> ServiceStats:
        """The current snapshot, refreshed first when older than ``refresh_s``.

        A concurrent scrape gets the previous snapshot instead of waiting for the refresh.
        Database errors propagate (the caller serves what it has).
        """
        now = time.monotonic()
        if self._snapshot is not None and now - self._refreshed < self.refresh_s:
            return self._snapshot
        if not self._lock.acquire(blocking=self._snapshot is None):
            assert self._snapshot is not None
            return self._snapshot
        try:
            if self._snapshot is None or time.monotonic() - self._refreshed >= self.refresh_s:
                with session_factory() as session:
                    self._snapshot = self._refresh(session)
                self._refreshed = time.monotonic()
            return self._snapshot
        finally:
            self._lock.release()

    @property
    def last(self) -> ServiceStats | None:
        """The last snapshot made, however old (None before the first)."""
        return self._snapshot

    # ------------------------------------------------------------------ refresh

    def _refresh(self, session: Session) -> ServiceStats:
        now = datetime.now(UTC)
        sweeps = session.execute(
            select(Sweep.id, Sweep.status, Sweep.results_version, Sweep.finished_at)
        ).all()
        sweep_counts = dict.fromkeys((s.value for s in SweepStatus), 0)
        for row in sweeps:
            sweep_counts[str(row.status)] = sweep_counts.get(str(row.status), 0) + 1
        trials = self._trial_counts(session, sweeps, now)
        epochs = self._epochs(session)
        clock = database_now(session)  # the clock the heartbeats were written by
        ages = {
            str(runner_id): max(0.0, (clock - _utc(heartbeat)).total_seconds())
            for runner_id, heartbeat in session.execute(select(Runner.id, Runner.heartbeat_at))
        }
        return ServiceStats(sweep_counts, trials, epochs, ages, now)

    def _trial_counts(
        self, session: Session, sweeps: Sequence[Any], now: datetime
    ) -> dict[str, int]:
        full = time.monotonic() - self._recounted >= self.recount_s
        settled_before = now - timedelta(seconds=self.settle_s)
        stale: list[int] = []
        for row in sweeps:
            cached = self._per_sweep.get(row.id)
            settled = (
                row.status in FINISHED_SWEEP_STATUSES
                and row.finished_at is not None
                and _utc(row.finished_at) < settled_before
            )
            if full or not settled or cached is None or cached.key != _key(row):
                stale.append(row.id)
        live = {row.id: row for row in sweeps}
        fresh: dict[int, dict[str, int]] = {i: {} for i in stale}
        for sweep_id, status, n in self._count(session, None if full else stale):
            if sweep_id in fresh:
                fresh[sweep_id][str(status)] = int(n)
        for sweep_id, counts in fresh.items():
            self._per_sweep[sweep_id] = _SweepCounts(_key(live[sweep_id]), counts)
        for gone in set(self._per_sweep) - set(live):
            del self._per_sweep[gone]
        if full:
            self._recounted = time.monotonic()
        totals = dict.fromkeys((s.value for s in TrialStatus), 0)
        for entry in self._per_sweep.values():
            for status, n in entry.counts.items():
                totals[status] = totals.get(status, 0) + n
        return totals

    @staticmethod
    def _count(session: Session, sweep_ids: list[int] | None) -> Iterator[tuple[int, str, int]]:
        query = select(Trial.sweep_id, Trial.status, func.count()).group_by(
            Trial.sweep_id, Trial.status
        )
        queries = (
            [query]
            if sweep_ids is None
            else [  # bounded IN lists
                query.where(Trial.sweep_id.in_(sweep_ids[start : start + 500]))
                for start in range(0, len(sweep_ids), 500)
            ]
        )
        for q in queries:
            for sweep_id, status, n in session.execute(q):
                yield int(sweep_id), str(status), int(n)

    def _epochs(self, session: Session) -> EpochHistogram:
        if self._settled_id is None:
            self._settle_initial(session)
        rows = session.execute(
            select(TrialEpoch.id, TrialEpoch.seconds, TrialEpoch.recorded_at).where(
                TrialEpoch.id > (self._settled_id or 0)
            )
        ).all()
        newest: datetime | None = None
        for epoch_id, seconds, recorded_at in rows:
            self._recent.setdefault(int(epoch_id), (seconds, _utc(recorded_at)))
            newest = max(newest or _utc(recorded_at), _utc(recorded_at))
        if newest is not None:
            # Move rows recorded well before the newest one below the watermark.
            cutoff = newest - timedelta(seconds=self.epoch_settle_s)
            old = [i for i, (_, at) in self._recent.items() if at < cutoff]
            if old:
                top = max(old)
                for epoch_id in sorted(i for i in self._recent if i <= top):
                    self._settled.add(self._recent.pop(epoch_id)[0])
                self._settled_id = top
        histogram = self._settled.copy()
        for seconds, _ in self._recent.values():
            histogram.add(seconds)
        return histogram

    def _settle_initial(self, session: Session) -> None:
        """Aggregate, in the database, the epoch rows recorded ``epoch_settle_s`` ago."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.epoch_settle_s)
        top = session.scalar(select(func.max(TrialEpoch.id)).where(TrialEpoch.recorded_at < cutoff))
        self._settled_id = int(top or 0)
        if not top:
            return
        seconds = TrialEpoch.seconds
        columns: list[Any] = [
            func.count(),
            func.count(seconds),
            func.coalesce(func.sum(seconds), 0.0),
        ]
        columns += [func.sum(case((seconds <= b, 1), else_=0)) for b in EPOCH_SECONDS_BUCKETS]
        row = session.execute(select(*columns).where(TrialEpoch.id <= top)).one()
        self._settled = EpochHistogram(
            count=int(row[0]),
            timed=int(row[1]),
            seconds=float(row[2]),
            buckets=[int(v or 0) for v in row[3:]],
        )


def _key(row: Any) -> tuple[str, int]:
    return (str(row.status), int(row.results_version or 0))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
