"""The runner's store and result writer under transient database errors (SQLite's
"database is locked" from a writer that holds the lock; no Ray): bounded retries, writes
applied in order and once each, permanent errors dropped with a reason."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from service import repository
from service.db import create_engine_for, session_scope, upgrade_database
from service.errors import StorageError
from service.spec import SweepSpec
from workers.tune.store import RetryPolicy, SweepStore, single_attempts
from workers.tune.writer import ResultWriter


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_database(url)
    return url


def _store(url: str, window_s: float = 30.0) -> SweepStore:
    # A short busy timeout: a held lock shows up as "database is locked" at once.
    return SweepStore(
        create_engine_for(url, busy_timeout_ms=50),
        retry=RetryPolicy(window_s=window_s, initial_s=0.02, max_s=0.2),
    )


def _trial(store: SweepStore) -> int:
    spec = SweepSpec.model_validate(
        {"model": {"arch": "mlp", "hidden": [4]}, "dataset": "synthetic", "lambdas": [0.1]}
    )
    with session_scope(store.engine) as session:
        sweep_id = int(repository.create_sweep(session, spec).id)
    return store.trials(sweep_id)[0].id


class HeldLock:
    """Another process's writer: holds SQLite's write lock until released."""

    def __init__(self, url: str) -> None:
        self.conn = sqlite3.connect(
            url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
        )
        self.conn.execute("BEGIN IMMEDIATE")

    def release_after(self, seconds: float) -> threading.Thread:
        def release() -> None:
            time.sleep(seconds)  # the outage being simulated, not a wait for a condition
            self.conn.execute("COMMIT")
            self.conn.close()

        thread = threading.Thread(target=release)
        thread.start()
        return thread


def test_a_locked_database_is_waited_out_and_the_outage_measured(url: str) -> None:
    store = _store(url)
    trial_id = _trial(store)
    lock = HeldLock(url)
    started = time.monotonic()
    releaser = lock.release_after(1.0)
    store.record_epoch(trial_id, {"epoch": 1, "loss": 0.5})  # retried until the lock goes
    releaser.join()
    assert time.monotonic() - started >= 0.9
    assert store.health.outage_s() == 0 and store.health.up_for_s() > 0
    with session_scope(store.engine, readonly=True) as session:
        assert [e.epoch for e in repository.list_trial_epochs(session, trial_id)] == [1]


def test_retries_are_bounded(url: str) -> None:
    store = _store(url, window_s=0.5)
    trial_id = _trial(store)
    lock = HeldLock(url)
    try:
        with pytest.raises(StorageError, match="locked"):
            store.record_epoch(trial_id, {"epoch": 1, "loss": 0.5})
        assert store.health.outage_s() >= 0.4
    finally:
        lock.release_after(0).join()


def test_queued_writes_are_applied_in_order_once_each_after_an_outage(url: str) -> None:
    store = _store(url, window_s=0.3)  # the writer keeps retrying past one call's window
    trial_id = _trial(store)
    writer = ResultWriter("t", retry_wait_s=0.05)
    applied: list[int] = []

    def write(epoch: int) -> None:
        store.record_epoch(trial_id, {"epoch": epoch, "loss": 1.0 / epoch})
        applied.append(epoch)

    lock = HeldLock(url)
    for epoch in range(1, 21):
        writer.submit(f"epoch {epoch}", lambda epoch=epoch: write(epoch))
    assert not writer.flush(timeout_s=0.5)  # nothing gets through while locked
    assert writer.pending == 20 and applied == []
    lock.release_after(0.5).join()
    assert writer.flush(timeout_s=30)
    writer.close()
    assert applied == list(range(1, 21))  # in order, each once
    with session_scope(store.engine, readonly=True) as session:
        epochs = repository.list_trial_epochs(session, trial_id)
    assert [e.epoch for e in epochs] == list(range(1, 21))
    recorded = [e.recorded_at for e in epochs]
    assert recorded == sorted(recorded)


def test_a_permanent_error_drops_that_write_only(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(url)
    trial_id = _trial(store)
    writer = ResultWriter("t")
    writer.submit("bad result", lambda: store.record_result(trial_id, {"accuracy": 0.5}, b""))
    writer.submit("epoch 1", lambda: store.record_epoch(trial_id, {"epoch": 1, "loss": 0.1}))
    assert writer.flush(timeout_s=30)
    writer.close()
    assert writer.dropped == ["bad result"]
    assert "dropping bad result" in caplog.text and "lacks" in caplog.text
    with session_scope(store.engine, readonly=True) as session:
        trial = repository.get_trial(session, trial_id)
        assert (trial.status, trial.epochs_done) == ("pending", 1)


def test_abandoning_a_writer_returns_at_once(url: str) -> None:
    store = _store(url, window_s=0.2)
    trial_id = _trial(store)
    writer = ResultWriter("t", retry_wait_s=0.05)
    lock = HeldLock(url)
    try:
        writer.submit("epoch 1", lambda: store.record_epoch(trial_id, {"epoch": 1}))
        started = time.monotonic()
        writer.close(abandon=True)
        assert time.monotonic() - started < 5
        with pytest.raises(RuntimeError):
            writer.submit("late", lambda: None)
    finally:
        lock.release_after(0).join()


@pytest.mark.parametrize("still_ours", [True, False])
def test_after_an_outage_the_guard_decides_whether_queued_writes_still_apply(
    url: str, still_ours: bool
) -> None:
    """The guard is asked once, after the first transient failure: a sweep still this
    runner's gets every write; one taken over meanwhile gets none (nor later ones). The
    store's own retries (30 s here) are off on the writer's thread: a write stuck in them
    when the database returned would be applied without asking."""
    store = _store(url)
    trial_id = _trial(store)
    asked: list[int] = []

    def guard() -> bool:  # as the runner's: renew the heartbeat (a write), then answer
        store.heartbeat("me", host="h", pid=1)
        asked.append(len(applied))
        return still_ours

    writer = ResultWriter("t", retry_wait_s=0.05, guard=guard, context=single_attempts)
    applied: list[int] = []

    def write(epoch: int) -> None:
        store.record_epoch(trial_id, {"epoch": epoch, "loss": 1.0 / epoch})
        applied.append(epoch)

    writer.submit("epoch 1", lambda: write(1))
    assert writer.flush(timeout_s=30) and asked == []  # no failure, no question
    lock = HeldLock(url)
    for epoch in (2, 3, 4):
        writer.submit(f"epoch {epoch}", lambda epoch=epoch: write(epoch))
    assert not writer.flush(timeout_s=0.5)
    lock.release_after(0.2).join()
    assert writer.flush(timeout_s=30)
    writer.submit("epoch 5", lambda: write(5))
    assert writer.flush(timeout_s=30)
    writer.close()
    assert asked == [1]
    if still_ours:
        assert applied == [1, 2, 3, 4, 5] and not writer.disowned and writer.dropped == []
    else:
        assert applied == [1] and writer.disowned
        assert writer.dropped == ["epoch 2", "epoch 3", "epoch 4", "epoch 5"]
    with session_scope(store.engine, readonly=True) as session:
        epochs = [e.epoch for e in repository.list_trial_epochs(session, trial_id)]
    assert epochs == applied


def test_a_recheck_asks_the_guard_before_the_next_write(url: str) -> None:
    """The runner saw its sweep taken over while the database answered: the writes it
    still holds go through the guard, which drops them."""
    store = _store(url)
    trial_id = _trial(store)
    started, gate = threading.Event(), threading.Event()
    applied: list[int] = []
    writer = ResultWriter("t", guard=lambda: False)

    def write(epoch: int) -> None:
        started.set()
        gate.wait(10)
        store.record_epoch(trial_id, {"epoch": epoch})
        applied.append(epoch)

    for epoch in (1, 2, 3):
        writer.submit(f"epoch {epoch}", lambda epoch=epoch: write(epoch))
    assert started.wait(10)
    writer.recheck()  # epoch 1 is being applied already: it lands, the rest is asked about
    gate.set()
    assert writer.flush(timeout_s=30)
    writer.close()
    assert applied == [1] and writer.disowned and writer.dropped == ["epoch 2", "epoch 3"]
