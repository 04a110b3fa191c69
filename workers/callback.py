"""Driver-side persistence: a ``tune.Callback`` that writes every result through ``service``.

Ray Tune calls these hooks in the driver (the runner process), which is the only process
that talks to the database. A Ray trial is one pack; its results fan out to the pack's trial
rows. The callback also keeps a small *resume index* next to Ray Tune's checkpoints: for
each unfinished pack, the path of its latest checkpoint, so that a runner restarted after a
crash continues those packs instead of training them again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from workers.trainable import EPOCH, FINAL, STARTED, model_filename

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from workers.store import SweepStore

__all__ = ["PersistResultsCallback", "ResumeIndex"]

log = logging.getLogger(__name__)


class ResumeIndex:
    """``{member trial ids: latest checkpoint path}`` of unfinished packs, as a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            self._entries = json.loads(path.read_text(encoding="utf-8"))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @staticmethod
    def _key(trial_ids: Sequence[int]) -> str:
        return ",".join(str(i) for i in trial_ids)

    def entries(self) -> list[tuple[list[int], str]]:
        return [(list(e["trial_ids"]), str(e["checkpoint"])) for e in self._entries.values()]

    def remember(self, trial_ids: Sequence[int], checkpoint: str) -> None:
        with self._lock:
            self._entries[self._key(trial_ids)] = {
                "trial_ids": list(trial_ids),
                "checkpoint": checkpoint,
            }
            self._save()

    def forget(self, trial_ids: Sequence[int]) -> None:
        with self._lock:
            if self._entries.pop(self._key(trial_ids), None) is not None:
                self._save()

    def _save(self) -> None:
        # Atomic replace: a crash mid-write must not lose the index.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._entries), encoding="utf-8")
        os.replace(tmp, self.path)


class PersistResultsCallback(tune.Callback):
    """Writes trial starts, epochs, final measures + models and failures to the database.

    Args:
        store: The runner's database adapter.
        sweep_id: The sweep all trials of this Tuner belong to.
        resume_index: Where unfinished packs' checkpoints are remembered.
        optuna_trial_number_offset: unused by grid sweeps; Optuna trials get rows on start.
    """

    def __init__(self, store: SweepStore, sweep_id: int, resume_index: ResumeIndex) -> None:
        self.store = store
        self.sweep_id = sweep_id
        self.resume_index = resume_index
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
            config = trial.config
            ids = [
                self.store.add_trial(
                    self.sweep_id, float(config["lam"]), float(config["beta"]), int(config["seed"])
                )
            ]
        self.trial_ids[trial.trial_id] = ids
        return ids

    # ------------------------------------------------------------------ Tune hooks

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.store.mark_running(self._ids(trial), node=None)

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
            self.store.mark_running(ids, node=result.get("node"))
        elif kind == EPOCH:
            for record in result.get("records", []):
                row = {k: v for k, v in record.items() if k != "member"}
                self.store.record_epoch(ids[int(record["member"])], row)

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
        self.resume_index.remember(self._ids(trial), checkpoint.path)

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
        with checkpoint.as_directory() as directory:
            for index, trial_id in enumerate(ids):
                model = Path(directory, model_filename(index)).read_bytes()
                self.store.record_result(trial_id, members[index], model)
                self.completed.add(trial_id)
        self.resume_index.forget(ids)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # Called once the FailureConfig retries are used up.
        self._fail(self._ids(trial), _error_text(trial))

    def _fail(self, ids: Sequence[int], error: str) -> None:
        self.store.mark_failed(ids, error)
        self.failed.update(ids)


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
