"""The runner loop and its cancellation stopper, with a stand-in store (no Ray)."""

from __future__ import annotations

import threading
import time
from typing import Any

from workers.runner import CancelStopper, Runner, RunnerOptions


class FlakyStore:
    """Claims fail twice (a database outage), then there is simply nothing to do."""

    def __init__(self) -> None:
        self.claims = 0
        self.status = "running"
        self.status_polls = 0

    def resumable(self, runner_id: str) -> list[Any]:
        return []

    def claim_next_pending(self, runner_id: str) -> None:
        self.claims += 1
        if self.claims <= 2:
            raise RuntimeError("database is locked")
        return None

    def sweep_status(self, sweep_id: int) -> str:
        self.status_polls += 1
        return self.status


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
    stopper = CancelStopper(store, 1, poll_s=0.2, shutdown=shutdown)  # type: ignore[arg-type]
    assert stopper.stop_all() is False
    for _ in range(50):  # Tune calls it on every step of its loop
        assert stopper.stop_all() is False
    assert store.status_polls == 1
    store.status = "cancelled"
    time.sleep(0.25)
    assert stopper.stop_all() is True and stopper.cancelled
    assert stopper("trial", {}) is False  # never stops a single trial on its own


def test_cancel_stopper_stops_everything_on_runner_shutdown() -> None:
    shutdown = threading.Event()
    stopper = CancelStopper(FlakyStore(), 1, poll_s=60, shutdown=shutdown)  # type: ignore[arg-type]
    assert stopper.stop_all() is False
    shutdown.set()
    assert stopper.stop_all() is True and not stopper.cancelled


def test_trials_reserve_the_specs_cpus_and_fractional_gpus() -> None:
    from ray import tune

    from workers.runner import trial_resources

    spec = {"resources": {"cpus_per_trial": 2, "gpus_per_trial": 0.25}}
    assert trial_resources(spec) == {"cpu": 2.0, "gpu": 0.25}
    wrapped = tune.with_resources(lambda config: None, trial_resources(spec))
    # Four such trials fit on one GPU.
    assert wrapped._resources.bundles == [{"CPU": 2.0, "GPU": 0.25}]
