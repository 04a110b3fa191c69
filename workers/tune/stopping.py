"""Early stopping across packs: the sweep's rung board as a Ray actor, and each pack's
``should_stop`` built on it (issue 13).

Pareto early stopping ranks every trial that reaches a rung against those that reached it
before (``workers.tune.rungs``): across packs, runners' restarts and nodes. One
:class:`RungBoardActor` per running sweep holds that state; the runner creates it (seeded
from the epochs stored in the database when a sweep resumes) and passes its handle in the
:class:`~workers.tune.protocol.TrainJob`. A trainable asks it only at rung epochs, so a
pack makes one small remote call per member and rung.

A member's ``stop_at`` (the budget search's short probes) ends it at that epoch without
asking anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ray

from workers.tune.rungs import RungBoard, rung_epochs

if TYPE_CHECKING:
    from l0models import EpochRecord
    from service.spec import SweepSpec
    from workers.tune.protocol import Member, StopFn

__all__ = ["RungBoardActor", "make_should_stop", "start_board", "stop_board"]


class RungBoardActor:
    """A :class:`~workers.tune.rungs.RungBoard` behind a Ray actor (one per running sweep);
    Ray runs its calls one at a time, so the board needs no lock."""

    def __init__(self, grace: int, eta: float, predict: bool) -> None:
        self.board = RungBoard(grace, eta, predict=predict)

    def decide(
        self, key: Any, history: list[dict[str, Any]], epochs: int, params_dense: int
    ) -> bool:
        return self.board.decide(key, history, epochs=epochs, params_dense=params_dense)

    def seed(
        self, histories: Mapping[Any, list[dict[str, Any]]], epochs: int, params_dense: int
    ) -> int:
        """Record the stored histories (a resumed sweep); the number of trials seeded."""
        for key, history in histories.items():
            self.board.seed(key, history, epochs=epochs, params_dense=params_dense)
        return len(histories)


#: Rank on the predicted final expected FLOPs (``rungs.predict_final_flops``) or on the
#: expected FLOPs at the rung; docs/benchmarks.md, "Search efficiency", says which won.
PREDICT_FLOPS = False


def start_board(
    spec: SweepSpec, histories: Mapping[Any, list[dict[str, Any]]] | None = None
) -> Any | None:
    """The sweep's board actor (None when the spec has no early stopping), seeded with
    ``histories`` (trial id → stored epoch rows)."""
    stopping = spec.early_stopping
    if stopping is None:
        return None
    actor: Any = ray.remote(num_cpus=0)(RungBoardActor).remote(
        stopping.grace_epochs, float(stopping.reduction_factor), PREDICT_FLOPS
    )
    if histories:
        ray.get(actor.seed.remote(dict(histories), spec.training.epochs, spec.dense_params()))
    return actor


def stop_board(actor: Any | None) -> None:
    if actor is not None:
        ray.kill(actor, no_restart=True)


def _asker(board: Any) -> Callable[..., bool]:
    # A Ray actor handle (the service) or a plain RungBoard (tests and benchmarks).
    if isinstance(board, RungBoard):
        return board.decide
    return lambda key, history, **kw: bool(ray.get(board.decide.remote(key, history, **kw)))


def make_should_stop(
    members: Sequence[Member], spec: SweepSpec, board: Any | None, *, key_prefix: str
) -> StopFn | None:
    """The pack's ``should_stop(k, history)``, or None when nothing can stop it.

    Args:
        members: The pack's members (``stop_at``: the budget search's probe length).
        spec: The sweep spec (epochs, the dense size, the early-stopping rungs).
        board: The sweep's board (actor handle or ``RungBoard``), or None.
        key_prefix: Names members without a database row yet (Optuna and budget trials get
            theirs when they start): ``{key_prefix}:{k}``.
    """
    stop_at = [m.stop_at for m in members]
    if board is None and all(s is None for s in stop_at):
        return None
    epochs = spec.training.epochs
    rungs: set[int] = set()
    if board is not None and spec.early_stopping is not None:
        stopping = spec.early_stopping
        rungs = set(rung_epochs(stopping.grace_epochs, float(stopping.reduction_factor), epochs))
    dense = spec.dense_params()
    ask = None if board is None else _asker(board)
    keys = [
        m.trial_id if m.trial_id is not None else f"{key_prefix}:{k}" for k, m in enumerate(members)
    ]

    def should_stop(k: int, history: Sequence[EpochRecord]) -> bool:
        if not history:
            return False
        epoch = int(history[-1].epoch)
        if stop_at[k] is not None and epoch >= int(stop_at[k]):  # type: ignore[arg-type]
            return True
        if ask is None or epoch not in rungs:
            return False
        rows = [r.as_dict() for r in history]
        return bool(ask(keys[k], rows, epochs=epochs, params_dense=dense))

    return should_stop
