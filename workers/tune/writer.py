"""The driver's write-behind queue: results reach the database in order, once each, and a
database outage never blocks Ray Tune or fails a trial.

Ray Tune calls the result callback on its control loop; a database write that waits out an
outage there would stall every trial. So the callback only *submits* writes; one thread
applies them in submission order. A transient failure (``service.db.is_transient``) keeps
the write at the head of the queue and retries it with capped backoff until the database
returns; the writes are idempotent (epoch rows and results are upserts), so a write whose
commit was lost with the connection is simply applied again. A permanent error drops that
one write with a logged reason.

After a transient failure the writer asks its ``guard`` (the runner: "is the sweep still
mine?", after renewing its heartbeat) before the next write. A runner cut off from the
database may have had its sweep taken over meanwhile; then its queued writes are stale (the
new runner redoes those epochs from the checkpoints it found) and are dropped, not applied
over the new runner's rows.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from service.db import is_transient

__all__ = ["ResultWriter"]

log = logging.getLogger(__name__)


class ResultWriter:
    """Applies submitted writes in order on a background thread.

    Args:
        name: For the thread's name and log lines (e.g. ``sweep-3``).
        retry_wait_s: Pause before retrying a write that failed transiently (the store's own
            retries back off too; this bounds how soon the database's return is noticed).
        guard: Asked after a transient failure, before the next write: False drops every
            queued and later write (:attr:`disowned`); an exception counts as the failure
            of that write.
        context: Entered on the writer thread around all its writes. The runner's makes
            its store calls try once (``workers.tune.store.single_attempts``), so that no
            write is retried inside the store past the guard.
    """

    def __init__(
        self,
        name: str = "",
        *,
        retry_wait_s: float = 0.5,
        guard: Callable[[], bool] | None = None,
        context: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self.name = name
        self.retry_wait_s = retry_wait_s
        self.guard = guard
        self.context = context
        self.dropped: list[str] = []
        self.written = 0
        self.disowned = False
        self._suspect = False  # a write failed transiently: ask the guard before the next
        self._queue: collections.deque[tuple[str, Callable[[], Any]]] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._abandoned = False
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles the run config (this rides along in the callback); a writer in
        # another process starts empty.
        return {"name": self.name, "retry_wait_s": self.retry_wait_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], retry_wait_s=state["retry_wait_s"])  # type: ignore[misc]

    # ------------------------------------------------------------------ producer side

    def submit(self, what: str, write: Callable[[], Any]) -> None:
        """Queue ``write`` (a store call) after every write submitted before it."""
        with self._cond:
            if self._closed:
                raise RuntimeError(f"writer {self.name} is closed")
            if self.disowned:
                self.dropped.append(what)
                return
            self._queue.append((what, write))
            self._start()
            self._cond.notify_all()

    def recheck(self) -> None:
        """Ask the guard before the next write, as after a failure (e.g. the runner saw its
        sweep taken over while the database answered: what it still queued may be stale)."""
        with self._cond:
            self._suspect = True

    @property
    def pending(self) -> int:
        """Writes not yet applied (queued or in progress)."""
        with self._cond:
            return len(self._queue)

    def flush(
        self, *, timeout_s: float | None = None, give_up: Callable[[], bool] | None = None
    ) -> bool:
        """Wait until every submitted write is applied; False on timeout or ``give_up()``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._queue:
                if give_up is not None and give_up():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.2 if remaining is None else min(0.2, remaining))
            return True

    def close(self, *, abandon: bool = False) -> None:
        """Stop the thread: after the queue drains, or at once with ``abandon`` (the writes
        still queued are lost; a later runner redoes them from checkpoints)."""
        with self._cond:
            self._closed = True
            self._abandoned = abandon
            if abandon and self._queue:
                log.warning(
                    "writer %s: %d write(s) not applied (database unreachable)",
                    self.name,
                    len(self._queue),
                )
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0 if abandon else None)

    # ------------------------------------------------------------------ writer thread

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"l0sweep-writer-{self.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        with self.context():
            self._apply()

    def _apply(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._abandoned or not self._queue:
                    return
                what, write = self._queue[0]
            try:
                if self._suspect and self.guard is not None:
                    if not self.guard():
                        self._disown()
                        return
                    self._suspect = False
                write()
            except Exception as exc:
                if is_transient(exc):
                    self._suspect = True
                    with self._cond:
                        # Stays at the head: order is kept, nothing is written twice over.
                        if not self._abandoned:
                            self._cond.wait(self.retry_wait_s)
                    continue
                log.error("writer %s: dropping %s: %s", self.name, what, exc)
                self.dropped.append(what)
            with self._cond:
                self._queue.popleft()
                self.written += 1
                self._cond.notify_all()

    def _disown(self) -> None:
        with self._cond:
            stale = [what for what, _ in self._queue]
            self._queue.clear()
            self.dropped.extend(stale)
            self.disowned = True
            self._cond.notify_all()
        log.warning(
            "writer %s: the sweep is no longer this runner's; dropped %d queued write(s)",
            self.name,
            len(stale),
        )
