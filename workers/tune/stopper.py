"""The ``tune.Stopper`` of a running sweep: cancellation, takeover, pause and shutdown.

Ray Tune calls ``stop_all`` on every step of its control loop (about every 0.1 s); the
database is polled at most every ``poll_s``, without retries (an outage must not stall
Tune's loop), and the whole experiment stops when:

- the sweep was cancelled (``cancelled``);
- another runner took the sweep over, or finished it (``taken_over``): this runner's claim
  is gone, so its Tuner must stop;
- the database has been unreachable longer than the outage tolerance (``paused``): the
  runner then pauses the sweep (see ``workers.tune.runner``);
- the database is unreachable and this runner's heartbeat (its lease on the sweep) has not
  been renewed for ``lease_s`` (``fenced``, and paused): another runner that still reaches
  the database may take the sweep over after the runner timeout, and two runners must never
  train the same trials;
- the runner shuts down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ray import tune

from service.vocabulary import SweepStatus

if TYPE_CHECKING:
    from workers.tune.store import SweepStore

__all__ = ["CancelStopper"]

log = logging.getLogger(__name__)


class CancelStopper(tune.Stopper):
    """Stops the whole experiment on cancellation, takeover, a long outage or shutdown.

    Args:
        store: The runner's database adapter (its ``health`` measures outages).
        sweep_id: The sweep.
        poll_s: Least seconds between two polls of the sweep's status and runner.
        shutdown: Set when the runner stops.
        runner_id: This runner; None skips the takeover check.
        outage_tolerance_s: Pause after the database has been unreachable this long.
        lease_age_s: Seconds since this runner's heartbeat was last written; None skips
            the lease check.
        lease_s: Pause once the database is unreachable and the lease is this old.
        clock: Monotonic time (tests).
    """

    def __init__(
        self,
        store: SweepStore,
        sweep_id: int,
        poll_s: float,
        shutdown: threading.Event,
        *,
        runner_id: str | None = None,
        outage_tolerance_s: float = math.inf,
        lease_age_s: Callable[[], float] | None = None,
        lease_s: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.sweep_id = sweep_id
        self.poll_s = poll_s
        self.shutdown = shutdown
        self.runner_id = runner_id
        self.outage_tolerance_s = outage_tolerance_s
        self.lease_age_s = lease_age_s
        self.lease_s = lease_s
        self.clock = clock
        self.cancelled = False
        self.taken_over = False
        self.paused = False
        self.fenced = False
        self._last = -math.inf

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles the run config; an Event cannot be pickled (and is per process).
        state = self.__dict__.copy()
        state["shutdown"] = None
        state["lease_age_s"] = None  # bound to this process's heartbeat thread
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.shutdown = threading.Event()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        if self.shutdown.is_set():
            return True
        if self.cancelled or self.taken_over or self.paused:
            return True
        now = self.clock()
        if now - self._last >= self.poll_s:
            self._last = now
            self._poll()
        return self.cancelled or self.taken_over or self.paused

    def _poll(self) -> None:
        try:
            status, runner = self.store.owner(self.sweep_id, retry=False)
        except Exception as exc:  # an outage must not kill the experiment; health counts it
            log.debug("could not poll sweep %s: %s", self.sweep_id, exc)
            outage = self.store.health.outage_s()
            lease = self.lease_age_s() if self.lease_age_s is not None else 0.0
            if lease > self.lease_s:
                log.warning(
                    "heartbeat not renewed for %.0f s and the database is unreachable: "
                    "another runner may take sweep %s over; stopping this runner's trials",
                    lease,
                    self.sweep_id,
                )
                self.fenced = self.paused = True
            elif outage > self.outage_tolerance_s:
                log.warning(
                    "database unreachable for %.0f s (tolerance %.0f s): pausing sweep %s",
                    outage,
                    self.outage_tolerance_s,
                    self.sweep_id,
                )
                self.paused = True
            return
        if status == SweepStatus.CANCELLED:
            self.cancelled = True
        elif self.runner_id is not None and (
            runner != self.runner_id or status != SweepStatus.RUNNING
        ):
            log.warning(
                "sweep %s is now %s with runner %s: stopping this runner's trials",
                self.sweep_id,
                status,
                runner,
            )
            self.taken_over = True
