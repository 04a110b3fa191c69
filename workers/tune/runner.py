"""The runner: claims pending sweeps, runs each as a Ray Tune experiment, marks the outcome.

One runner process is the Ray Tune *driver*: it holds the database connection, and Ray Tune
schedules the trials on whatever Ray cluster it is connected to (a local instance or a GPU
cluster). Cancellation, takeover and pause are a ``tune.Stopper``
(``workers.tune.stopper``); crash resume is driven by the database (completed trials are
never scheduled again) plus the resume index in the database (unfinished packs continue from
their last checkpoint), so any runner can resume any sweep.

Faults (issue 9):

- *Database outage*: results queue in order in a :class:`ResultWriter` and are written once
  when the database returns; no trial and no sweep fails for it. Past
  ``db_outage_tolerance_s`` the runner stops the sweep's trials (their checkpoints are on
  storage), writes what it queued once the database is back, and *pauses* the sweep: it
  stays ``running`` with no runner (``runner_id`` NULL), and the next loop pass of any live
  runner resumes it from its checkpoints. A pause never marks a sweep ``failed``.
- *Runner death*: every runner heartbeats (``workers.tune.liveness``); each loop pass takes
  over a ``running`` sweep whose runner's heartbeat is older than ``runner_timeout_s``
  (``service.repository.runners``). A runner whose sweep was taken over stops its Tuner.
- *Partition* (this runner cut off, others not): the heartbeat is a lease. Unable to renew
  it for ``lease_s`` while the database is unreachable, the runner stops its trials before
  anyone may take over; back in touch, its writer writes what it queued only if the sweep
  is still its own.
- *Unschedulable trials*: a sweep whose per-trial resources no node has fails at once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import traceback
from pathlib import Path
from typing import Any

import pyarrow.fs

from service.db import is_transient
from service.errors import ConflictError
from service.logs import active_log_format
from service.spec import BudgetSearch, OptunaSearch
from service.vocabulary import (
    FINISHED_SWEEP_STATUSES,
    OPEN_TRIAL_STATUSES,
    SweepStatus,
    TrialStatus,
)
from workers.tune.callback import PersistResultsCallback, ResumeIndex
from workers.tune.checkpoints import discard_checkpoints
from workers.tune.experiments import Experiments, configure_tune_environment
from workers.tune.liveness import Heartbeat, default_runner_id
from workers.tune.options import RunnerOptions, SweepOutcome
from workers.tune.packing import pack_size, trial_resources, unschedulable_reason
from workers.tune.protocol import TrainJob
from workers.tune.stopper import CancelStopper
from workers.tune.stopping import start_board, stop_board
from workers.tune.store import SweepRow, SweepStore, single_attempts
from workers.tune.trial_log import sweep_logging
from workers.tune.writer import ResultWriter

__all__ = [
    "CancelStopper",
    "Runner",
    "RunnerOptions",
    "SweepOutcome",
    "configure_tune_environment",
    "default_runner_id",
    "ensure_storage",
]

log = logging.getLogger(__name__)

_UNFINISHED = OPEN_TRIAL_STATUSES


class Runner:
    """Runs sweeps from the database on the connected Ray cluster.

    Args:
        store: Database adapter.
        options: See :class:`RunnerOptions`.
    """

    def __init__(self, store: SweepStore, options: RunnerOptions) -> None:
        self.store = store
        self.options = options
        self.experiments = Experiments(store, options)
        self.shutdown = threading.Event()
        self.heartbeat = Heartbeat(store, options.runner_id, options.heartbeat_s)
        self._serving = False
        self._writer: ResultWriter | None = None

    def queued_writes(self) -> int:
        """Results of the running sweep still waiting to be written (e.g. during an outage)."""
        writer = self._writer
        return 0 if writer is None else writer.pending

    # ------------------------------------------------------------------ loop

    def serve_forever(self) -> None:
        """Run sweeps until :meth:`stop`: on every pass, a sweep whose runner died (or this
        runner's own, after a restart) first, else the oldest pending one."""
        self._serving = True
        try:
            while not self.shutdown.is_set():
                if self._guarded(self.run_next) is None:
                    self.shutdown.wait(self.options.poll_interval_s)
        finally:
            # Only now, with its Tuner stopped: other runners may resume its sweep at once.
            self.heartbeat.stop(forget=True)
            self._serving = False

    def _guarded(self, step: Any) -> Any:
        # The loop outlives a database outage or a broken sweep: log, wait, try again.
        try:
            return step()
        except Exception as exc:
            if is_transient(exc):
                log.warning("runner step failed, database unreachable: %s", exc)
            else:
                log.exception("runner step failed; retrying")
            self.shutdown.wait(max(1.0, self.options.poll_interval_s))
            return None

    def stop(self) -> None:
        """Ask the loop and a running sweep to stop; the sweep stays resumable (and, once the
        loop has ended and its heartbeat is dropped, any other runner resumes it at once)."""
        self.shutdown.set()
        if not self._serving:
            self.heartbeat.stop(forget=True)

    def resume_interrupted(self) -> list[SweepOutcome]:
        """Run the sweeps this runner (its id) left ``running``, e.g. after a restart."""
        outcomes = []
        while not self.shutdown.is_set():
            self.heartbeat.start()
            sweep = self.store.take_over(self.options.runner_id, None)
            if sweep is None:
                break
            log.info("resuming sweep %s", sweep.id)
            outcomes.append(self.run_sweep(sweep))
        return outcomes

    def run_next(self) -> SweepOutcome | None:
        """Take over an orphaned running sweep, else claim the oldest pending one, and run
        it; None when there is neither."""
        self.heartbeat.start()
        sweep = self.store.take_over(self.options.runner_id, self._takeover_timeout())
        if sweep is not None:
            log.info("took over sweep %s (its runner stopped or paused)", sweep.id)
        else:
            sweep = self.store.claim_next_pending(self.options.runner_id)
            if sweep is None:
                return None
            log.info("claimed sweep %s", sweep.id)
        return self.run_sweep(sweep)

    def _takeover_timeout(self) -> float | None:
        """The heartbeat age past which other runners' sweeps are taken over; None (only
        unowned and own sweeps) until this runner has seen the database up for that long:
        just after an outage every heartbeat is old, and their runners are alive."""
        timeout = self.options.runner_timeout_s
        return timeout if self.store.health.up_for_s() >= timeout else None

    # ------------------------------------------------------------------ one sweep

    @sweep_logging  # its log lines carry sweep_id (issue 15)
    def run_sweep(self, sweep: SweepRow) -> SweepOutcome:
        """Run (or resume) one claimed sweep to its final status, a pause or a takeover.
        A finished sweep's checkpoints are deleted (its models are in the database)."""
        outcome = self._run_sweep(sweep)
        if outcome.status in FINISHED_SWEEP_STATUSES:
            folders, freed = discard_checkpoints(self._sweep_storage(sweep.id))
            if folders:
                log.info(
                    "sweep %s is %s: deleted its %d checkpoint(s), %.1f MB",
                    sweep.id,
                    outcome.status,
                    folders,
                    freed / 1e6,
                )
        return outcome

    def _run_sweep(self, sweep: SweepRow) -> SweepOutcome:
        self.heartbeat.start()
        spec = sweep.spec
        runner_id = self.options.runner_id
        sweep_dir = self._sweep_storage(sweep.id)
        writer = self._writer = ResultWriter(
            f"sweep-{sweep.id}",
            guard=lambda: self._still_ours(sweep.id),
            context=single_attempts,
        )
        index = ResumeIndex(self.store, sweep.id)
        callback = PersistResultsCallback(self.store, sweep.id, index, writer)
        stopper = CancelStopper(
            self.store,
            sweep.id,
            self.options.cancel_poll_s,
            self.shutdown,
            runner_id=runner_id,
            outage_tolerance_s=self.options.db_outage_tolerance_s,
            lease_age_s=self.heartbeat.age_s,
            lease_s=self.options.lease_s,
        )
        trials_run = 0
        job: TrainJob | None = None
        try:
            rows = self.store.trials(sweep.id)
            unfinished = [t for t in rows if t.status in _UNFINISHED]
            reason = unschedulable_reason(trial_resources(spec))
            if reason is not None:
                # Ray would keep such a trial pending forever, holding up every later sweep.
                log.error("sweep %s cannot be scheduled: %s", sweep.id, reason)
                self.store.mark_failed([t.id for t in unfinished], reason)
                status = self.store.finish(
                    sweep.id, status=SweepStatus.FAILED, error=reason, runner_id=runner_id
                )
                return SweepOutcome(sweep.id, status, 0, 0, len(unfinished))
            job = TrainJob(
                spec=spec,
                data_root=self.options.data_root,
                sweep_id=sweep.id,
                log_format=active_log_format(),
            )
            # Load (and cache) it once here: a missing dataset fails the sweep, not each trial.
            job.data  # noqa: B018
            if spec.early_stopping is not None:
                # Seeded with what earlier runs of this sweep stored (a resume, a takeover).
                board = start_board(spec, self.store.epoch_histories(sweep.id))
                job = dataclasses.replace(job, rungs=board)
            # A crashed run left some rows "running": they are pending until Ray restarts them.
            self.store.mark_pending([t.id for t in unfinished if t.status == TrialStatus.RUNNING])

            k = pack_size(job, len(unfinished))
            if unfinished and not stopper.stop_all():
                trials_run += len(unfinished)
                self.experiments.packs(
                    sweep.id, job, unfinished, k, index, callback, stopper, sweep_dir
                )
            adaptive = isinstance(spec.search, (OptunaSearch, BudgetSearch))
            if adaptive and not stopper.stop_all():
                remaining = sweep.n_trials - len(rows)
                if remaining > 0:
                    trials_run += remaining
                    fit = (
                        self.experiments.optuna
                        if isinstance(spec.search, OptunaSearch)
                        else self.experiments.budget
                    )
                    fit(sweep.id, job, remaining, callback, stopper, sweep_dir)
            if not (stopper.cancelled or stopper.taken_over or self.shutdown.is_set()):
                self._flush(writer, stopper)
            if stopper.paused:
                return self._pause(sweep.id, writer, trials_run, callback)
            if stopper.cancelled:
                return self._outcome(sweep.id, SweepStatus.CANCELLED, trials_run, callback)
            if stopper.taken_over:
                return self._outcome(
                    sweep.id, SweepStatus.RUNNING, trials_run, callback, taken_over=True
                )
            if self.shutdown.is_set():
                # Left "running" on purpose: a runner (this one restarted, or another) resumes it.
                return self._outcome(
                    sweep.id, SweepStatus.RUNNING, trials_run, callback, interrupted=True
                )
            status = self.store.finish(sweep.id, runner_id=runner_id)
            return self._outcome(sweep.id, status, trials_run, callback)
        except ConflictError:
            log.warning("sweep %s was taken over by another runner", sweep.id)
            return self._outcome(
                sweep.id, SweepStatus.RUNNING, trials_run, callback, taken_over=True
            )
        except Exception as exc:
            if self.shutdown.is_set():
                log.warning("sweep %s interrupted by shutdown: %s", sweep.id, exc)
                return self._outcome(
                    sweep.id, SweepStatus.RUNNING, trials_run, callback, interrupted=True
                )
            if stopper.paused or is_transient(exc) or self.store.health.outage_s() > 0:
                # A database outage never fails a sweep.
                log.warning("sweep %s stopped by a database outage: %s", sweep.id, exc)
                return self._pause(sweep.id, writer, trials_run, callback)
            log.exception("sweep %s failed", sweep.id)
            self._flush(writer, stopper)
            status = self.store.finish(
                sweep.id, status=SweepStatus.FAILED, error=_short_error(exc), runner_id=runner_id
            )
            return self._outcome(sweep.id, status, trials_run, callback)
        finally:
            stop_board(job.rungs if job is not None else None)
            if stopper.taken_over:  # what is still queued is written only if still ours
                writer.recheck()
            # Shutdown: give queued writes a moment; what is left is redone from checkpoints.
            if writer.pending and not writer.flush(timeout_s=10.0):
                log.warning("sweep %s: %d result write(s) not applied", sweep.id, writer.pending)
            writer.close(abandon=True)

    def _still_ours(self, sweep_id: int) -> bool:
        """After an outage, before the queued results are written: renew the heartbeat (so
        no runner takes the sweep over while they are), then check that no runner did
        while this one could not reach the database. Raises what the database raises."""
        self.heartbeat.renew()
        _, owner = self.store.owner(sweep_id, retry=False)
        if owner != self.options.runner_id:
            log.warning(
                "sweep %s was taken over by %s while this runner was cut off", sweep_id, owner
            )
        return owner == self.options.runner_id

    def _flush(self, writer: ResultWriter, stopper: CancelStopper) -> None:
        """Wait for the queued results; past the outage tolerance, mark the sweep paused."""
        tolerance = self.options.db_outage_tolerance_s

        def give_up() -> bool:
            return self.shutdown.is_set() or self.store.health.outage_s() > tolerance

        if not writer.flush(give_up=give_up) and not self.shutdown.is_set():
            stopper.paused = True

    def _pause(
        self,
        sweep_id: int,
        writer: ResultWriter,
        trials_run: int,
        callback: PersistResultsCallback,
    ) -> SweepOutcome:
        """Trials are stopped at their checkpoints; once the database is back, write what
        queued, then leave the sweep ``running`` without a runner for any runner to resume.
        Waits for the database (the loop could not do anything else meanwhile) unless the
        runner shuts down."""
        log.warning(
            "pausing sweep %s: %d queued write(s) wait for the database", sweep_id, writer.pending
        )
        if writer.flush(give_up=self.shutdown.is_set):
            if writer.disowned:  # taken over while this runner was cut off
                return self._outcome(
                    sweep_id, SweepStatus.RUNNING, trials_run, callback, taken_over=True
                )
            try:
                self.store.release(sweep_id, self.options.runner_id)
            except Exception as exc:  # still ours then: this runner's next pass resumes it
                log.warning("could not release paused sweep %s: %s", sweep_id, exc)
        return self._outcome(
            sweep_id, SweepStatus.RUNNING, trials_run, callback, interrupted=True, paused=True
        )

    def _outcome(
        self,
        sweep_id: int,
        status: str,
        trials_run: int,
        callback: PersistResultsCallback,
        *,
        interrupted: bool = False,
        paused: bool = False,
        taken_over: bool = False,
    ) -> SweepOutcome:
        return SweepOutcome(
            sweep_id=sweep_id,
            status=status,
            trials_run=trials_run,
            completed=len(callback.completed),
            failed=len(callback.failed),
            interrupted=interrupted or paused or taken_over,
            paused=paused,
            taken_over=taken_over,
        )

    def _sweep_storage(self, sweep_id: int) -> str:
        root = self.options.storage_path.rstrip("/")
        if "://" not in root:
            Path(root).mkdir(parents=True, exist_ok=True)
        return f"{root}/sweep-{sweep_id}"


def _short_error(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:]


def ensure_storage(path: str) -> None:
    """Fail early when the storage URI cannot be opened."""
    if "://" in path:
        pyarrow.fs.FileSystem.from_uri(path)
    else:
        Path(path).mkdir(parents=True, exist_ok=True)
