"""Runner identity and heartbeat (issue 9).

Each runner process has a unique id (``host:uuid``) and writes a heartbeat row every few
seconds from a thread of its own, so a long sweep, a busy Ray Tune loop or a database outage
in the result writer never delays it. Other runners take over the ``running`` sweeps of a
runner whose heartbeat is older than ``L0SWEEP_RUNNER_TIMEOUT_S``.

The heartbeat is also the runner's *lease* on its sweep: a runner that has not renewed it for
most of the timeout can no longer know that the sweep is still its own (it may be cut off
from a database that other runners still reach), so it stops its trials
(``workers.tune.stopper``) and, once it reaches the database again, writes what it queued
only if the sweep is still its own (``workers.tune.writer``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.tune.store import SweepStore

__all__ = ["Heartbeat", "default_runner_id"]

log = logging.getLogger(__name__)


def default_runner_id() -> str:
    """``hostname:uuid``: unique per process, so no two runners ever share an id (a
    container recreated with the hostname of a dead one included)."""
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"


class Heartbeat:
    """Writes ``runner_id``'s heartbeat every ``interval_s`` until :meth:`stop`.

    Args:
        store: The runner's database adapter.
        runner_id: The runner's id (``sweeps.runner_id`` of the sweeps it runs).
        interval_s: Seconds between heartbeats; a few times shorter than the timeout.
    """

    def __init__(self, store: SweepStore, runner_id: str, interval_s: float) -> None:
        self.store = store
        self.runner_id = runner_id
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._renewed = time.monotonic()

    def age_s(self) -> float:
        """Seconds since the heartbeat was last written (since creation before the first)."""
        return time.monotonic() - self._renewed

    def start(self) -> None:
        """Beat once now (so a claim is never without a heartbeat), then in the background.
        Idempotent."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._beat()
            self._thread = threading.Thread(target=self._run, name="l0sweep-heartbeat", daemon=True)
            self._thread.start()

    def stop(self, *, forget: bool = True) -> None:
        """Stop beating; ``forget`` drops the row so other runners may take over at once."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is None:
            return
        thread.join(self.interval_s + 5)
        if forget:
            try:
                self.store.forget_runner(self.runner_id)
            except Exception:  # the database is down: the heartbeat simply goes stale
                log.warning("could not drop runner %s's heartbeat", self.runner_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._beat()

    def _beat(self) -> None:
        try:
            self.renew()
        except Exception as exc:  # counted by the store's DatabaseHealth; logged there
            log.debug("heartbeat of %s failed: %s", self.runner_id, exc)

    def renew(self) -> None:
        """Write the heartbeat now (raises what the database raises)."""
        started = time.monotonic()
        self.store.heartbeat(self.runner_id, host=socket.gethostname(), pid=os.getpid())
        self._renewed = max(self._renewed, started)
