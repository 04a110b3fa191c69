"""The Ray Tune experiments of one sweep: its packs (grid, random, and unfinished rows of
any strategy), the Optuna search and the budget search (issue 13).

Each ``Tuner.fit`` is a fresh experiment in the sweep's storage folder; what carries over
between (re)starts is in the database: completed trials, and the checkpoints of unfinished
packs (the resume index).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from service.vocabulary import RESULT_TRIAL_STATUSES, TrialStatus
from workers.tune.budget import FinishedTrial
from workers.tune.budget_search import budget_searcher
from workers.tune.callback import PersistResultsCallback, ResumeIndex
from workers.tune.options import RunnerOptions
from workers.tune.packing import trial_resources
from workers.tune.protocol import Member, TrainJob
from workers.tune.search import grid_param_space, optuna_searcher, plan_packs
from workers.tune.stopper import CancelStopper
from workers.tune.store import SweepStore, TrialRow
from workers.tune.trainable import train_pack

__all__ = ["Experiments", "configure_tune_environment"]


def configure_tune_environment() -> None:
    """Ray Tune settings the runner relies on; read by Tune when an experiment runs, so they
    are set by the driver before each ``Tuner.fit`` (never at import)."""
    # Multi-objective Optuna sweeps only report their objectives in the final result; Tune's
    # strict check would reject the per-epoch results that lack them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # Tune's result analysis reads the JSON/CSV logs (added explicitly in Experiments.fit); the
    # TensorBoard logger would only complain about our list-valued results.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Tune snapshots its experiment state at every checkpoint and may warn about it each
    # time; that state is small.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def _member(row: TrialRow) -> Member:
    """The pack member of a stored trial row."""
    return Member(
        row.lam,
        row.beta,
        row.seed,
        trial_id=row.id,
        weight_decay=row.weight_decay,
        stop_at=row.stop_at,
    )


def _checkpoint_uri(storage_path: str, path: str) -> str:
    # Checkpoint paths come without the scheme for remote filesystems (s3://, gs://).
    if "://" in storage_path and "://" not in path:
        return f"{storage_path.split('://', 1)[0]}://{path}"
    return path


class Experiments:
    """Runs a sweep's trials as Ray Tune experiments (the runner's part that talks to Tune).

    Args:
        store: Database adapter.
        options: The runner's options (storage, retries, engine override).
    """

    def __init__(self, store: SweepStore, options: RunnerOptions) -> None:
        self.store = store
        self.options = options

    def packs(
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
        by_id = {t.id: _member(t) for t in rows}
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
        self.fit(
            job,
            grid_param_space(packs, resume_from),
            tune.TuneConfig(max_concurrent_trials=job.spec.max_concurrent_trials),
            callback,
            stopper,
            sweep_dir,
            name="packs",
        )

    def optuna(
        self,
        sweep_id: int,
        job: TrainJob,
        n_samples: int,
        callback: PersistResultsCallback,
        stopper: CancelStopper,
        sweep_dir: str,
    ) -> None:
        done = [
            t
            for t in self.store.trials(sweep_id)
            if t.status == TrialStatus.COMPLETED and t.metrics
        ]
        searcher = optuna_searcher(
            job.spec, completed=[(_member(t), t.metrics or {}) for t in done]
        )
        self._fit_searcher(job, searcher, n_samples, callback, stopper, sweep_dir, "optuna")

    def budget(
        self,
        sweep_id: int,
        job: TrainJob,
        n_samples: int,
        callback: PersistResultsCallback,
        stopper: CancelStopper,
        sweep_dir: str,
    ) -> None:
        """The budget search (issue 13): its planner is warm-started with the trials
        earlier runs of this sweep finished, so a resume does not probe them again."""
        histories = self.store.epoch_histories(sweep_id)
        finished = [
            FinishedTrial(lam=t.lam, history=histories.get(t.id, ()), measures=t.metrics)
            for t in self.store.trials(sweep_id)
            if t.status in RESULT_TRIAL_STATUSES
        ]
        searcher = budget_searcher(job.spec, finished=finished)
        self._fit_searcher(job, searcher, n_samples, callback, stopper, sweep_dir, "budget")

    def _fit_searcher(
        self,
        job: TrainJob,
        searcher: Any,
        n_samples: int,
        callback: PersistResultsCallback,
        stopper: CancelStopper,
        sweep_dir: str,
        name: str,
    ) -> None:
        """``n_samples`` trials, each asked of ``searcher`` (Optuna, the budget search)."""
        self.fit(
            job,
            {},
            tune.TuneConfig(
                search_alg=searcher,
                num_samples=n_samples,
                max_concurrent_trials=job.spec.max_concurrent_trials,
            ),
            callback,
            stopper,
            sweep_dir,
            name=name,
        )

    def fit(
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
        configure_tune_environment()
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
                # Tune keeps every checkpoint: the runner deletes old ones once a newer one is
                # in the resume index (workers.tune.checkpoints.prune_checkpoints).
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                verbose=0,
            ),
        )
        tuner.fit()


def _trial_dirname(trial: Any) -> str:
    return f"trial-{trial.trial_id}"
