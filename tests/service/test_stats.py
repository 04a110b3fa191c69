"""service.repository.stats: the /metrics figures equal brute-force counts, and a refresh
reads neither the trials of settled sweeps nor old epoch rows."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session

from service import repository as repo
from service.db import session_scope
from service.models import Sweep, Trial, TrialEpoch
from service.repository import EPOCH_SECONDS_BUCKETS, StatsCollector
from service.vocabulary import SweepStatus, TrialStatus
from tests.service.test_repository import make_spec, metrics

OPEN = (SweepStatus.PENDING, SweepStatus.RUNNING)


def _reader(engine: Engine) -> Any:
    def open_session() -> AbstractContextManager[Session]:
        return session_scope(engine, readonly=True)

    return open_session


def _brute_force(engine: Engine) -> tuple[dict[str, int], dict[str, int], list[float | None]]:
    with session_scope(engine, readonly=True) as s:
        sweeps = dict.fromkeys((v.value for v in SweepStatus), 0)
        for status, n in s.execute(select(Sweep.status, func.count()).group_by(Sweep.status)):
            sweeps[str(status)] = int(n)
        trials = dict.fromkeys((v.value for v in TrialStatus), 0)
        for status, n in s.execute(select(Trial.status, func.count()).group_by(Trial.status)):
            trials[str(status)] = int(n)
        seconds = list(s.scalars(select(TrialEpoch.seconds)))
    return sweeps, trials, seconds


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()).lower())

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_snapshots_follow_random_operations_like_a_brute_force_count(engine: Engine) -> None:
    rng = random.Random(0)
    collector = StatsCollector(refresh_s=0, settle_s=0, epoch_settle_s=0)
    with session_scope(engine) as s:
        sweep_ids = [repo.create_sweep(s, make_spec(name=f"s{i}")).id for i in range(4)]
    for step in range(40):
        with session_scope(engine) as s:
            sweep_id = rng.choice(sweep_ids)
            trial = rng.choice(repo.list_trials(s, sweep_id).items)
            action = rng.choice(["run", "epoch", "result", "fail", "cancel", "finish"])
            if action == "run":
                repo.mark_trial_running(s, trial.id, node="n")
            elif action == "epoch":
                row = {"epoch": trial.epochs_done + 1, "loss": 0.1, "seconds": rng.random() * 70}
                repo.record_trial_epoch(s, trial.id, row)
            elif action == "result":
                repo.record_trial_result(s, trial.id, metrics(0.9, 0.5, 10.0), b"m")
            elif action == "fail":
                repo.mark_trial_failed(s, trial.id, "boom")  # even in a finished sweep
            elif action == "cancel" and repo.get_sweep(s, sweep_id).status in OPEN:
                repo.cancel_sweep(s, sweep_id)
            elif action == "finish":
                repo.finish_sweep(s, sweep_id)
        if step % 3 == 0:
            # Drift of a settled sweep that no key shows (a late failure) is caught by the
            # periodic full recount; here every refresh is one.
            collector.recount_s = 0 if step % 6 == 0 else 1e9
            stats = collector.snapshot(_reader(engine))
            sweeps, trials, seconds = _brute_force(engine)
            assert stats.sweeps == sweeps
            if collector.recount_s == 0:
                assert stats.trials == trials
            assert stats.epochs.count == len(seconds)
            timed = [x for x in seconds if x is not None]
            assert stats.epochs.timed == len(timed)
            assert stats.epochs.seconds == pytest.approx(sum(timed))
            assert stats.epochs.buckets == [
                sum(x <= b for x in timed) for b in EPOCH_SECONDS_BUCKETS
            ]


def test_a_refresh_counts_only_the_trials_of_open_sweeps(engine: Engine) -> None:
    with session_scope(engine) as s:
        done = repo.create_sweep(s, make_spec(name="done")).id
        open_ = repo.create_sweep(s, make_spec(name="open")).id
        for trial in repo.list_trials(s, done).items:
            repo.record_trial_result(s, trial.id, metrics(0.9, 0.5, 10.0))
        repo.finish_sweep(s, done)
    collector = StatsCollector(refresh_s=0, settle_s=0)
    first = collector.snapshot(_reader(engine))
    assert first.trials["completed"] == 8 and first.trials["pending"] == 8
    with _statements(engine) as seen:
        again = collector.snapshot(_reader(engine))
    assert again.trials == first.trials
    trial_reads = [q for q in seen if " from trials" in q]
    assert len(trial_reads) == 1 and "where trials.sweep_id in" in trial_reads[0]
    with session_scope(engine) as s:  # the finished sweep's version moves: counted again
        trial_id = repo.list_trials(s, done).items[0].id
        repo.record_trial_result(s, trial_id, metrics(0.8, 0.5, 10.0))
        s.execute(update(Trial).where(Trial.sweep_id == open_).values(status="running"))
    assert collector.snapshot(_reader(engine)).trials["running"] == 8


def test_epoch_rows_are_read_once_past_the_settle_window(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        trial_id = repo.list_trials(s, sweep_id).items[0].id
        for epoch in range(1, 6):
            repo.record_trial_epoch(s, trial_id, {"epoch": epoch, "seconds": 1.5})
        # Two rows stamped long ago: the first refresh aggregates them in the database.
        old = datetime.now(UTC) - timedelta(hours=1)
        s.execute(update(TrialEpoch).where(TrialEpoch.epoch <= 2).values(recorded_at=old))
    collector = StatsCollector(refresh_s=0, epoch_settle_s=60)
    stats = collector.snapshot(_reader(engine))
    assert (stats.epochs.count, stats.epochs.seconds) == (5, 7.5)
    with _statements(engine) as seen:
        stats = collector.snapshot(_reader(engine))
    assert stats.epochs.count == 5
    [epoch_read] = [q for q in seen if "from trial_epochs" in q]
    assert "trial_epochs.id >" in epoch_read  # above the watermark only, no aggregate
    with session_scope(engine) as s:  # re-recording an epoch does not count it twice
        repo.record_trial_epoch(s, trial_id, {"epoch": 5, "seconds": 1.5})
        repo.record_trial_epoch(s, trial_id, {"epoch": 6, "seconds": None})
    stats = collector.snapshot(_reader(engine))
    assert (stats.epochs.count, stats.epochs.timed) == (6, 5)


def test_a_snapshot_is_reused_within_the_refresh_interval(engine: Engine) -> None:
    collector = StatsCollector(refresh_s=3600)
    first = collector.snapshot(_reader(engine))
    with session_scope(engine) as s:
        repo.create_sweep(s, make_spec())
        repo.record_heartbeat(s, "runner@a", host="a", pid=1)
    with _statements(engine) as seen:
        assert collector.snapshot(_reader(engine)) is first
    assert seen == []
    collector.refresh_s = 0
    fresh = collector.snapshot(_reader(engine))
    assert fresh.sweeps["pending"] == 1
    assert 0 <= fresh.runner_heartbeat_age_s["runner@a"] < 60
