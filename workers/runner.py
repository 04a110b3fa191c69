"""The runner: claims pending sweeps, runs each as a Ray Tune experiment, marks the outcome.

One runner process is the Ray Tune *driver*: it holds the database connection, and Ray Tune
schedules the trials on whatever Ray cluster it is connected to (a local instance or a GPU
cluster). Cancellation is a ``tune.Stopper`` that polls the sweep's status; crash resume is
driven by the database (completed trials are never scheduled again) plus the callback's
resume index (unfinished packs continue from their last checkpoint).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs
import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from workers import _l0
from workers.callback import PersistResultsCallback, ResumeIndex
from workers.search import (
    grid_param_space,
    optuna_searcher,
    plan_packs,
    resolve_pack_size,
)
from workers.store import SweepRow, SweepStore, TrialRow
from workers.trainable import Member, PackEngine, TrainJob, train_pack

__all__ = [
    "CancelStopper",
    "Runner",
    "RunnerOptions",
    "SweepOutcome",
    "default_runner_id",
    "ensure_storage",
    "probe_pack_size_on_worker",
    "trial_resources",
]

log = logging.getLogger(__name__)

_UNFINISHED = ("pending", "running")
# Multi-objective Optuna sweeps only report their objectives in the final result; Tune's
# strict check would reject the per-epoch results that lack them.
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
# Tune's result analysis reads the JSON/CSV logs (added explicitly in Runner._fit); the
# TensorBoard logger would only complain about our list-valued results.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# num_to_keep=1 (one checkpoint per trial on disk) makes Tune snapshot its experiment state
# at every checkpoint and warn about it each time; that state is small and we accept it.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def default_runner_id() -> str:
    """Stable across restarts on one host, so a restarted runner resumes its own sweeps."""
    return f"runner@{socket.gethostname()}"


@dataclass
class RunnerOptions:
    """How a runner runs sweeps.

    Attributes:
        storage_path: Ray Tune's storage (checkpoints). Must be reachable from every node:
            a local directory on one machine, a shared (NFS) directory or a URI such as
            ``s3://bucket/prefix`` on a cluster.
        runner_id: Recorded on claimed sweeps; a restarted runner resumes the running sweeps
            that carry its id.
        poll_interval_s: Idle wait between looking for pending sweeps.
        cancel_poll_s: How often a running sweep's status is checked for cancellation.
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
    max_failures: int = 2
    engine: PackEngine | None = None
    data_root: str | None = None
    reuse_actors: bool = True


@dataclass(frozen=True)
class SweepOutcome:
    sweep_id: int
    status: str
    trials_run: int
    completed: int
    failed: int
    interrupted: bool = False


class CancelStopper(tune.Stopper):
    """Stops the whole experiment once the sweep is cancelled or the runner shuts down.

    Ray Tune calls ``stop_all`` on every step of its control loop (about every 0.1 s), so
    the database is polled at most every ``poll_s``.
    """

    def __init__(
        self, store: SweepStore, sweep_id: int, poll_s: float, shutdown: threading.Event
    ) -> None:
        self.store = store
        self.sweep_id = sweep_id
        self.poll_s = poll_s
        self.shutdown = shutdown
        self.cancelled = False
        self._last = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles the run config; an Event cannot be pickled (and is per process).
        state = self.__dict__.copy()
        state["shutdown"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.shutdown = threading.Event()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        if self.shutdown.is_set():
            return True
        now = time.monotonic()
        if not self.cancelled and now - self._last >= self.poll_s:
            self._last = now
            try:
                self.cancelled = self.store.sweep_status(self.sweep_id) == "cancelled"
            except Exception:  # a database hiccup must not kill the experiment
                log.warning("could not poll sweep %s status", self.sweep_id, exc_info=True)
        return self.cancelled


def _checkpoint_uri(storage_path: str, path: str) -> str:
    # Checkpoint paths come without the scheme for remote filesystems (s3://, gs://).
    if "://" in storage_path and "://" not in path:
        return f"{storage_path.split('://', 1)[0]}://{path}"
    return path


class Runner:
    """Runs sweeps from the database on the connected Ray cluster.

    Args:
        store: Database adapter.
        options: See :class:`RunnerOptions`.
    """

    def __init__(self, store: SweepStore, options: RunnerOptions) -> None:
        self.store = store
        self.options = options
        self.shutdown = threading.Event()

    # ------------------------------------------------------------------ loop

    def serve_forever(self) -> None:
        """Resume interrupted sweeps, then run pending ones until :meth:`stop`."""
        self._guarded(self.resume_interrupted)
        while not self.shutdown.is_set():
            if self._guarded(self.run_next) is None:
                self.shutdown.wait(self.options.poll_interval_s)

    def _guarded(self, step: Any) -> Any:
        # The loop outlives a database outage or a broken sweep: log, wait, try again.
        try:
            return step()
        except Exception:
            log.exception("runner step failed; retrying in %.0f s", self.options.poll_interval_s)
            self.shutdown.wait(max(1.0, self.options.poll_interval_s))
            return None

    def stop(self) -> None:
        """Ask the loop and a running sweep to stop; the sweep stays resumable."""
        self.shutdown.set()

    def resume_interrupted(self) -> list[SweepOutcome]:
        """Run the sweeps this runner left ``running`` (after a crash or restart)."""
        outcomes = []
        for sweep in self.store.resumable(self.options.runner_id):
            if self.shutdown.is_set():
                break
            log.info("resuming sweep %s", sweep.id)
            outcomes.append(self.run_sweep(sweep))
        return outcomes

    def run_next(self) -> SweepOutcome | None:
        """Claim the oldest pending sweep and run it; None when there is none."""
        sweep = self.store.claim_next_pending(self.options.runner_id)
        if sweep is None:
            return None
        log.info("claimed sweep %s", sweep.id)
        return self.run_sweep(sweep)

    # ------------------------------------------------------------------ one sweep

    def run_sweep(self, sweep: SweepRow) -> SweepOutcome:
        """Run (or resume) one claimed sweep to its final status."""
        spec = sweep.spec
        sweep_dir = self._sweep_storage(sweep.id)
        index = ResumeIndex(Path(self._local_state_dir(sweep.id), "resume.json"))
        callback = PersistResultsCallback(self.store, sweep.id, index)
        stopper = CancelStopper(self.store, sweep.id, self.options.cancel_poll_s, self.shutdown)
        trials_run = 0
        try:
            job = TrainJob(
                spec=spec,
                data=_l0.load_data(spec, root=self.options.data_root),
                cpus_per_trial=float(spec["resources"]["cpus_per_trial"]),
            )
            rows = self.store.trials(sweep.id)
            unfinished = [t for t in rows if t.status in _UNFINISHED]
            # A crashed run left some rows "running": they are pending until Ray restarts them.
            self.store.mark_pending([t.id for t in unfinished if t.status == "running"])

            k = 1
            if spec["search"]["strategy"] != "optuna":
                k = self._pack_size(spec, job, len(unfinished))
            if unfinished and not stopper.stop_all():
                trials_run += len(unfinished)
                self._fit_packs(sweep.id, job, unfinished, k, index, callback, stopper, sweep_dir)
            if spec["search"]["strategy"] == "optuna" and not stopper.stop_all():
                remaining = sweep.n_trials - len(rows)
                if remaining > 0:
                    trials_run += remaining
                    self._fit_optuna(sweep.id, job, rows, remaining, callback, stopper, sweep_dir)
        except Exception as exc:
            log.exception("sweep %s failed", sweep.id)
            if self.shutdown.is_set():
                return self._outcome(sweep.id, "running", trials_run, callback, interrupted=True)
            status = self.store.finish(sweep.id, status="failed", error=_short_error(exc))
            return self._outcome(sweep.id, status, trials_run, callback)

        if stopper.cancelled:
            return self._outcome(sweep.id, "cancelled", trials_run, callback)
        if self.shutdown.is_set():
            # Left "running" on purpose: the next runner start resumes it.
            return self._outcome(sweep.id, "running", trials_run, callback, interrupted=True)
        status = self.store.finish(sweep.id)
        return self._outcome(sweep.id, status, trials_run, callback)

    def _pack_size(self, spec: dict[str, Any], job: TrainJob, n_members: int) -> int:
        fused = _l0.fused_engine() is not None
        auto_size, slots = 1, 1
        if spec.get("fuse", "auto") == "auto" and fused:
            resources = trial_resources(spec)
            cluster = ray.cluster_resources()
            if resources["gpu"] > 0:
                slots = int(cluster.get("GPU", 0) // resources["gpu"])
            else:
                slots = int(cluster.get("CPU", 0) // resources["cpu"])
            auto_size = _l0.auto_pack_size(spec, job.data)
            if resources["gpu"] > 0 and auto_size == 1 and slots > 0:
                # The driver often has no GPU (the compose runner): ask a GPU worker instead.
                auto_size = probe_pack_size_on_worker(spec, job, resources)
        return resolve_pack_size(
            spec,
            fused_available=fused,
            n_members=n_members,
            slots=max(1, slots),
            auto_size=auto_size,
        )

    def _outcome(
        self,
        sweep_id: int,
        status: str,
        trials_run: int,
        callback: PersistResultsCallback,
        *,
        interrupted: bool = False,
    ) -> SweepOutcome:
        return SweepOutcome(
            sweep_id=sweep_id,
            status=status,
            trials_run=trials_run,
            completed=len(callback.completed),
            failed=len(callback.failed),
            interrupted=interrupted,
        )

    def _fit_packs(
        self,
        sweep_id: int,
        job: TrainJob,
        rows: Sequence[TrialRow],
        k: int,
        index: ResumeIndex,
        callback: PersistResultsCallback,
        stopper: CancelStopper,
        sweep_dir: str,
    ) -> None:
        """Grid/random (and unfinished Optuna) rows, packed by ``k``, each run once."""
        by_id = {t.id: Member(t.lam, t.beta, t.seed, trial_id=t.id) for t in rows}
        packs: list[list[Member]] = []
        resume_from: dict[int, str] = {}
        # Packs that were interrupted keep their composition so their checkpoint applies.
        for trial_ids, checkpoint in index.entries():
            if trial_ids and all(i in by_id for i in trial_ids):
                resume_from[len(packs)] = _checkpoint_uri(self.options.storage_path, checkpoint)
                packs.append([by_id.pop(i) for i in trial_ids])
        packs.extend(plan_packs(list(by_id.values()), k))
        for number, pack in enumerate(packs):
            if len(pack) > 1:
                self.store.set_pack(
                    [m.trial_id for m in pack if m.trial_id is not None], f"s{sweep_id}-p{number}"
                )
        self._fit(
            job,
            grid_param_space(packs, resume_from),
            tune.TuneConfig(max_concurrent_trials=job.spec.get("max_concurrent_trials")),
            callback,
            stopper,
            sweep_dir,
            name="packs",
        )

    def _fit_optuna(
        self,
        sweep_id: int,
        job: TrainJob,
        rows: Sequence[TrialRow],
        n_samples: int,
        callback: PersistResultsCallback,
        stopper: CancelStopper,
        sweep_dir: str,
    ) -> None:
        done = [t for t in self.store.trials(sweep_id) if t.status == "completed" and t.metrics]
        searcher = optuna_searcher(
            job.spec,
            completed=[
                (Member(t.lam, t.beta, t.seed, trial_id=t.id), t.metrics or {}) for t in done
            ],
        )
        self._fit(
            job,
            {},
            tune.TuneConfig(
                search_alg=searcher,
                num_samples=n_samples,
                max_concurrent_trials=job.spec.get("max_concurrent_trials"),
            ),
            callback,
            stopper,
            sweep_dir,
            name="optuna",
        )

    def _fit(
        self,
        job: TrainJob,
        param_space: dict[str, Any],
        tune_config: tune.TuneConfig,
        callback: PersistResultsCallback,
        stopper: CancelStopper,
        sweep_dir: str,
        *,
        name: str,
    ) -> None:
        trainable = tune.with_resources(
            tune.with_parameters(train_pack, job=job, engine=self.options.engine),
            trial_resources(job.spec),
        )
        tune_config.reuse_actors = self.options.reuse_actors
        tune_config.trial_dirname_creator = _trial_dirname
        tune_config.trial_name_creator = _trial_dirname
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune_config,
            run_config=tune.RunConfig(
                # A fresh experiment per (re)start; the resume index carries checkpoints over.
                name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                storage_path=sweep_dir,
                callbacks=[callback, JsonLoggerCallback(), CSVLoggerCallback()],
                stop=stopper,
                failure_config=tune.FailureConfig(max_failures=self.options.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                verbose=0,
            ),
        )
        tuner.fit()

    def _sweep_storage(self, sweep_id: int) -> str:
        root = self.options.storage_path.rstrip("/")
        if "://" not in root:
            Path(root).mkdir(parents=True, exist_ok=True)
        return f"{root}/sweep-{sweep_id}"

    def _local_state_dir(self, sweep_id: int) -> str:
        # The resume index is the driver's own file: local even when checkpoints are remote.
        root = self.options.storage_path
        if "://" in root:
            root = str(Path(os.path.expanduser("~"), ".l0sweep", "runner-state"))
        path = Path(root, f"sweep-{sweep_id}")
        path.mkdir(parents=True, exist_ok=True)
        return str(path)


def trial_resources(spec: dict[str, Any] | Any) -> dict[str, float]:
    """What one Ray trial (one pack) reserves: the spec's per-trial CPUs and GPUs.

    Fractional GPUs (e.g. 0.25) let Ray place several trials on one GPU; Ray then points
    each trial's ``CUDA_VISIBLE_DEVICES`` at its GPU.
    """
    resources = spec["resources"]
    return {"cpu": float(resources["cpus_per_trial"]), "gpu": float(resources["gpus_per_trial"])}


def probe_pack_size_on_worker(
    spec: dict[str, Any], job: TrainJob, resources: dict[str, float], *, timeout_s: float = 120.0
) -> int:
    """``fuse: auto`` for GPU trials when the driver sees no GPU: run ``auto_pack_size`` as a
    Ray task holding one trial's share of a GPU, on a node that has one.

    Returns 1 (no fusion) when no GPU node takes the task within ``timeout_s`` (all GPUs
    busy, or none in the cluster), so a sweep is never held up by the probe.
    """
    remote: Any = ray.remote  # its typing stubs reject a function with keyword arguments
    probe = remote(num_cpus=0, num_gpus=resources["gpu"], max_retries=0)(_l0.pack_size_for)
    ref = probe.remote(**_l0.pack_size_request(spec, job.data))
    try:
        size = int(ray.get(ref, timeout=timeout_s))
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError) as exc:
        ray.cancel(ref, force=True)
        log.warning("fuse=auto: no GPU worker answered the pack-size probe (%s); K = 1", exc)
        return 1
    log.info("fuse=auto: a GPU worker chose packs of %d", size)
    return size


def _trial_dirname(trial: Any) -> str:
    return f"trial-{trial.trial_id}"


def _short_error(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:]


def ensure_storage(path: str) -> None:
    """Fail early when the storage URI cannot be opened."""
    if "://" in path:
        pyarrow.fs.FileSystem.from_uri(path)
    else:
        Path(path).mkdir(parents=True, exist_ok=True)
