"""Driver-side persistence: a ``tune.Callback`` that writes every result through ``service``.

Ray Tune calls these hooks in the driver (the runner process), which is the only process
that talks to the database. A Ray trial is one pack; its results fan out to the pack's trial
rows. Writes go through a :class:`workers.tune.writer.ResultWriter`: in order, once each,
and a database outage queues them instead of stalling Ray Tune or failing the trial.

The callback also keeps the *resume index* in the database: for each unfinished pack, its
latest checkpoint, so that whichever runner resumes the sweep (after a crash, a takeover or
a pause) continues those packs instead of training them again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from workers.tune.checkpoints import prune_checkpoints
from workers.tune.model_files import read_model_files
from workers.tune.protocol import EPOCH, FINAL, STARTED
from workers.tune.writer import ResultWriter

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from service.repository import ModelFiles
    from workers.tune.store import SweepStore

__all__ = ["PersistResultsCallback", "ResumeIndex"]

log = logging.getLogger(__name__)


class ResumeIndex:
    """``(member trial ids, latest checkpoint path)`` of a sweep's unfinished packs, kept in
    the database (``service.repository.checkpoints``)."""

    def __init__(self, store: SweepStore, sweep_id: int) -> None:
        self.store = store
        self.sweep_id = sweep_id

    def entries(self) -> list[tuple[list[int], str]]:
        return self.store.pack_checkpoints(self.sweep_id)

    def remember(self, trial_ids: Sequence[int], checkpoint: str) -> None:
        self.store.remember_checkpoint(self.sweep_id, list(trial_ids), checkpoint)

    def forget(self, trial_ids: Sequence[int]) -> None:
        self.store.forget_checkpoint(self.sweep_id, list(trial_ids))


class PersistResultsCallback(tune.Callback):
    """Writes trial starts, epochs, final measures + models and failures to the database.

    Args:
        store: The runner's database adapter.
        sweep_id: The sweep all trials of this Tuner belong to.
        resume_index: Where unfinished packs' checkpoints are remembered.
        writer: Applies the writes in order (a new one by default; the runner passes its own
            to flush it before finishing the sweep).
    """

    def __init__(
        self,
        store: SweepStore,
        sweep_id: int,
        resume_index: ResumeIndex,
        writer: ResultWriter | None = None,
    ) -> None:
        self.store = store
        self.sweep_id = sweep_id
        self.resume_index = resume_index
        self.writer = writer or ResultWriter(f"sweep-{sweep_id}")
        # Ray trial id -> database trial ids of its pack members, in pack order.
        self.trial_ids: dict[str, list[int]] = {}
        self.completed: set[int] = set()
        self.failed: set[int] = set()

    # ------------------------------------------------------------------ helpers

    def _ids(self, trial: Trial) -> list[int]:
        ids = self.trial_ids.get(trial.trial_id)
        if ids is not None:
            return ids
        pack = trial.config.get("pack")
        if pack is not None:
            ids = [int(m["trial_id"]) for m in pack["members"]]
        else:
            # Optuna: the sampler chose this point just now; its row is created here.
            # Budget search: a probe's stop_at is stored, so a resumed probe stops there too.
            config = trial.config
            stop_at = config.get("stop_at")
            ids = [
                self.store.add_trial(
                    self.sweep_id,
                    float(config["lam"]),
                    float(config["beta"]),
                    int(config["seed"]),
                    stop_at=None if stop_at is None else int(stop_at),
                )
            ]
        self.trial_ids[trial.trial_id] = ids
        return ids

    # ------------------------------------------------------------------ Tune hooks

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        ids = self._ids(trial)
        self.writer.submit(f"start {ids}", lambda: self.store.mark_running(ids, node=None))

    def on_trial_result(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        ids = self._ids(trial)
        kind = result.get("kind")
        if kind == STARTED:
            node = result.get("node")
            self.writer.submit(f"node {ids}", lambda: self.store.mark_running(ids, node=node))
        elif kind == EPOCH:
            for record in result.get("records", []):
                row = {k: v for k, v in record.items() if k != "member"}
                self._write_epoch(ids[int(record["member"])], row)

    def on_checkpoint(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        checkpoint: tune.Checkpoint,
        **info: Any,
    ) -> None:
        if trial.last_result.get("kind") == FINAL:
            return
        ids, path = self._ids(trial), checkpoint.path

        def index_then_prune() -> None:
            self.resume_index.remember(ids, path)
            prune_checkpoints(checkpoint)  # only now: the index points at this one

        self.writer.submit(f"checkpoint {ids}", index_then_prune)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        result = trial.last_result
        ids = self._ids(trial)
        if result.get("kind") != FINAL:
            # Stopped without a final result (e.g. the sweep was cancelled): nothing to store.
            return
        checkpoint = trial.checkpoint
        if checkpoint is None:
            self._fail(ids, "trial finished without its final checkpoint")
            return
        members: Sequence[Mapping[str, Any]] = result["members"]
        # Read now: the checkpoint may be gone by the time a queued write is applied.
        with checkpoint.as_directory() as directory:
            # Every format's file, or why there is none (issue 15).
            models = [read_model_files(directory, i) for i in range(len(ids))]
        for index, trial_id in enumerate(ids):
            self._write_result(trial_id, dict(members[index]), models[index])
            self.completed.add(trial_id)
        self.writer.submit(f"done {ids}", lambda: self.resume_index.forget(ids))

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # Called once the FailureConfig retries are used up.
        self._fail(self._ids(trial), _error_text(trial))

    def _fail(self, ids: Sequence[int], error: str) -> None:
        failed = list(ids)
        self.writer.submit(f"failed {failed}", lambda: self.store.mark_failed(failed, error))
        self.failed.update(ids)

    # Each write binds its own values (a lambda in a loop would see the last ones).

    def _write_epoch(self, trial_id: int, row: dict[str, Any]) -> None:
        self.writer.submit(
            f"epoch {row.get('epoch')} of trial {trial_id}",
            lambda: self.store.record_epoch(trial_id, row),
        )

    def _write_result(self, trial_id: int, metrics: dict[str, Any], model: ModelFiles) -> None:
        self.writer.submit(
            f"result of trial {trial_id}",
            lambda: self.store.record_result(trial_id, metrics, model),
        )


def _error_text(trial: Trial) -> str:
    """The trial's last error as Ray Tune recorded it (its exception and traceback)."""
    text = ""
    try:
        if trial.error_file:
            text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace")
    except OSError:  # no error file (e.g. the actor died): the message below still helps
        text = ""
    # The file appends every attempt; the last one is what failed the trial for good.
    last = text.rsplit("Failure # ", 1)[-1].strip()
    if not last:
        return f"trial {trial.trial_id} failed after {trial.num_failures} attempt(s)"
    return last[-4000:]
