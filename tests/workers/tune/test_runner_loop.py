"""The runner loop and its stopper (cancellation, takeover, pause), with a stand-in store
(no Ray)."""

from __future__ import annotations

import threading
import time
from typing import Any

from workers.tune.runner import CancelStopper, Runner, RunnerOptions
from workers.tune.store import DatabaseHealth


class FlakyStore:
    """Claims fail twice (a database outage), then there is simply nothing to do."""

    def __init__(self) -> None:
        self.claims = 0
        self.status = "running"
        self.runner: str | None = "me"
        self.status_polls = 0
        self.down = False
        self.health = DatabaseHealth()
        self.heartbeats = 0

    def heartbeat(self, runner_id: str, **_: Any) -> None:
        self.heartbeats += 1

    def forget_runner(self, runner_id: str) -> None:
        pass

    def take_over(self, runner_id: str, timeout_s: float | None) -> None:
        return None

    def claim_next_pending(self, runner_id: str) -> None:
        self.claims += 1
        if self.claims <= 2:
            raise RuntimeError("database is locked")
        return None

    def owner(self, sweep_id: int, *, retry: bool = True) -> tuple[str, str | None]:
        self.status_polls += 1
        if self.down:
            error = ConnectionRefusedError("database down")
            self.health.failed(error)
            raise error
        self.health.succeeded()
        return self.status, self.runner


def test_the_loop_survives_failing_steps_and_stops_on_request(tmp_path: Any) -> None:
    store = FlakyStore()
    runner = Runner(store, RunnerOptions(storage_path=str(tmp_path), poll_interval_s=0.01))  # type: ignore[arg-type]
    thread = threading.Thread(target=runner.serve_forever)
    thread.start()
    deadline = time.monotonic() + 10
    while store.claims < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert store.claims >= 4  # kept claiming after the two failures


def test_cancel_stopper_polls_at_most_every_poll_interval() -> None:
    store = FlakyStore()
    shutdown = threading.Event()
    now = [1000.0]
    stopper = CancelStopper(  # type: ignore[arg-type]
        store, 1, poll_s=0.2, shutdown=shutdown, clock=lambda: now[0]
    )
    assert stopper.stop_all() is False
    for _ in range(50):  # Tune calls it on every step of its loop
        now[0] += 0.001
        assert stopper.stop_all() is False
    assert store.status_polls == 1
    store.status = "cancelled"
    now[0] += 0.1  # 0.15 s after the first poll: not polled yet, so not seen
    assert stopper.stop_all() is False and store.status_polls == 1
    now[0] += 0.06  # past the poll interval
    assert stopper.stop_all() is True and stopper.cancelled
    assert store.status_polls == 2
    assert stopper("trial", {}) is False  # never stops a single trial on its own


def test_stopper_stops_when_another_runner_took_the_sweep_over() -> None:
    store = FlakyStore()
    stopper = CancelStopper(  # type: ignore[arg-type]
        store, 1, poll_s=0, shutdown=threading.Event(), runner_id="me"
    )
    assert stopper.stop_all() is False
    store.runner = "other-host:1234"
    assert stopper.stop_all() is True and stopper.taken_over and not stopper.cancelled
    # Finished by someone else counts too (this runner's claim is gone).
    store.runner, store.status = "me", "completed"
    again = CancelStopper(store, 1, poll_s=0, shutdown=threading.Event(), runner_id="me")  # type: ignore[arg-type]
    assert again.stop_all() is True and again.taken_over


def _stopper_on_a_fake_clock(now: list[float], **options: Any) -> tuple[FlakyStore, Any]:
    """A stand-in store and ``me``'s stopper polling it at every step, both on ``now[0]``."""
    store = FlakyStore()
    store.health = DatabaseHealth(clock=lambda: now[0])
    stopper = CancelStopper(  # type: ignore[arg-type]
        store,
        1,
        poll_s=0,
        shutdown=threading.Event(),
        runner_id="me",
        clock=lambda: now[0],
        **options,
    )
    return store, stopper


def test_stopper_pauses_only_past_the_outage_tolerance() -> None:
    now = [0.0]
    store, stopper = _stopper_on_a_fake_clock(now, outage_tolerance_s=30)
    store.down = True
    for _ in range(29):  # down for 29 s: the trials go on
        now[0] += 1.0
        assert stopper.stop_all() is False
    store.down = False  # back before the tolerance: the outage is over
    now[0] += 1.0
    assert stopper.stop_all() is False and store.health.outage_s() == 0
    store.down = True
    for _ in range(30):
        now[0] += 1.0
        stopper.stop_all()
    now[0] += 1.5
    assert stopper.stop_all() is True and stopper.paused and not stopper.cancelled


def test_a_runner_that_cannot_renew_its_lease_stops_its_trials_before_a_takeover() -> None:
    """Cut off from the database (a partition of this runner only), it cannot tell an outage
    from its sweep being taken over: past ``lease_s`` without a heartbeat it stops, however
    long the outage tolerance, and only while it cannot reach the database."""
    now = [0.0]
    lease_age = [0.0]
    store, stopper = _stopper_on_a_fake_clock(
        now, outage_tolerance_s=600, lease_age_s=lambda: lease_age[0], lease_s=45
    )
    lease_age[0] = 50  # the heartbeat thread stalled, but the database answers: go on
    assert stopper.stop_all() is False
    store.down = True
    lease_age[0] = 44
    assert stopper.stop_all() is False
    lease_age[0] = 46
    now[0] += 1
    assert stopper.stop_all() is True and stopper.fenced and stopper.paused
    assert store.health.outage_s() < 600
    assert "lease_age_s" in stopper.__getstate__() and stopper.__getstate__()["lease_age_s"] is None


def test_cancel_stopper_stops_everything_on_runner_shutdown() -> None:
    shutdown = threading.Event()
    stopper = CancelStopper(FlakyStore(), 1, poll_s=60, shutdown=shutdown)  # type: ignore[arg-type]
    assert stopper.stop_all() is False
    shutdown.set()
    assert stopper.stop_all() is True and not stopper.cancelled


def test_trials_reserve_the_specs_cpus_and_fractional_gpus() -> None:
    from ray import tune

    from service.spec import SweepSpec
    from workers.tune.packing import trial_resources

    spec = SweepSpec.model_validate(
        {
            "model": {"arch": "mlp"},
            "dataset": "synthetic",
            "lambdas": [0.1],
            "resources": {"cpus_per_trial": 2, "gpus_per_trial": 0.25},
        }
    )
    assert trial_resources(spec) == {"cpu": 2.0, "gpu": 0.25}
    wrapped = tune.with_resources(lambda config: None, trial_resources(spec))
    # Four such trials fit on one GPU.
    assert wrapped._resources.bundles == [{"CPU": 2.0, "GPU": 0.25}]
