"""How a runner runs sweeps (:class:`RunnerOptions`) and how one run of a sweep ended
(:class:`SweepOutcome`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.settings import get_settings
from workers.tune.liveness import default_runner_id
from workers.tune.protocol import PackEngine

__all__ = ["RunnerOptions", "SweepOutcome"]


def _setting(name: str) -> Any:
    # Read when a RunnerOptions is made (never at import): L0SWEEP_* from the environment.
    return lambda: getattr(get_settings(), name)


@dataclass
class RunnerOptions:
    """How a runner runs sweeps.

    Attributes:
        storage_path: Ray Tune's storage (checkpoints). Must be reachable from every node:
            a local directory on one machine, a shared (NFS) directory or a URI such as
            ``s3://bucket/prefix`` on a cluster.
        runner_id: Recorded on claimed sweeps; unique per process by default (``host:uuid``).
            A runner restarted with the same explicit id resumes its sweeps at once; others
            are taken over once the old id's heartbeat is ``runner_timeout_s`` old.
        poll_interval_s: Idle wait between looking for pending sweeps.
        cancel_poll_s: How often a running sweep's status and runner are checked
            (cancellation, takeover).
        runner_timeout_s: A running sweep whose runner's heartbeat is older is taken over
            (``L0SWEEP_RUNNER_TIMEOUT_S``).
        heartbeat_interval_s: Seconds between heartbeats (None: a quarter of the timeout,
            at most 5 s).
        db_outage_tolerance_s: How long results queue during a database outage before the
            sweep is paused (``L0SWEEP_DB_OUTAGE_TOLERANCE_S``).
        max_failures: Ray Tune retries of a failing trial (from its last checkpoint).
        engine: Pack engine override (tests); None picks per pack size.
        data_root: Dataset cache directory passed to ``l0models.load_dataset``.
        reuse_actors: Run the next trial in a finished trial's process (saves starting a
            Python process and importing torch for every trial).
    """

    storage_path: str
    runner_id: str = field(default_factory=default_runner_id)
    poll_interval_s: float = 1.0
    cancel_poll_s: float = 0.5
    runner_timeout_s: float = field(default_factory=_setting("runner_timeout_s"))
    heartbeat_interval_s: float | None = None
    db_outage_tolerance_s: float = field(default_factory=_setting("db_outage_tolerance_s"))
    max_failures: int = 2
    engine: PackEngine | None = None
    data_root: str | None = None
    reuse_actors: bool = True

    @property
    def heartbeat_s(self) -> float:
        if self.heartbeat_interval_s is not None:
            return self.heartbeat_interval_s
        return max(0.2, min(5.0, self.runner_timeout_s / 4))

    @property
    def lease_s(self) -> float:
        """A runner that could not renew its heartbeat for this long stops its sweep's trials:
        three quarters of the timeout, so they stop before another runner may take over."""
        return 0.75 * self.runner_timeout_s


@dataclass(frozen=True)
class SweepOutcome:
    """How one run of a sweep ended. ``interrupted``: left ``running`` for a later run
    (shutdown, pause, takeover); ``paused``: the database was down past the tolerance;
    ``taken_over``: another runner runs the sweep now."""

    sweep_id: int
    status: str
    trials_run: int
    completed: int
    failed: int
    interrupted: bool = False
    paused: bool = False
    taken_over: bool = False
