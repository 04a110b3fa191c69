"""``workers.tune.stopping``: each pack's ``should_stop`` on a rung board (no Ray here; the
runner's use of it on a real cluster is in test_early_stopping_sweeps.py)."""

from __future__ import annotations

from typing import Any

from l0models import EpochRecord
from service.spec import SweepSpec
from workers.tune.protocol import Member
from workers.tune.rungs import RungBoard
from workers.tune.stopping import make_should_stop


def _spec(**extra: Any) -> SweepSpec:
    body: dict[str, Any] = {
        "model": {"arch": "mlp", "hidden": [32, 16]},
        "dataset": "synthetic",
        "lambdas": [0.1, 1.0],
        "training": {"epochs": 8, "batch_size": 100},
    }
    body.update(extra)
    return SweepSpec.model_validate(body)


def _history(epochs: int, accuracy: float, flops: float, l0: float) -> list[EpochRecord]:
    return [
        EpochRecord(
            epoch=e,
            loss=1.0,
            accuracy=accuracy,
            expected_l0=l0,
            expected_flops=flops,
            seconds=0.1,
        )
        for e in range(1, epochs + 1)
    ]


ES = {"kind": "pareto", "grace_epochs": 2, "reduction_factor": 2}


def test_nothing_can_stop_a_pack_without_a_board_or_a_probe_length() -> None:
    spec = _spec()
    assert make_should_stop([Member(0.1, 2 / 3, 0)], spec, None, key_prefix="t") is None


def test_a_probe_stops_at_its_stop_at_epoch_and_not_before() -> None:
    spec = _spec()
    members = [Member(0.1, 2 / 3, 0, stop_at=3), Member(1.0, 2 / 3, 0)]
    should_stop = make_should_stop(members, spec, None, key_prefix="t")
    assert should_stop is not None
    assert not should_stop(0, _history(2, 0.9, 100.0, 10.0))
    assert should_stop(0, _history(3, 0.9, 100.0, 10.0))
    assert not should_stop(1, _history(3, 0.9, 100.0, 10.0))


def test_the_board_is_asked_only_at_rungs_and_a_dominated_trial_stops() -> None:
    spec = _spec(early_stopping=ES)  # rungs 2 and 4 of 8 epochs
    asked: list[tuple[Any, int]] = []
    board = RungBoard(2, 2.0)

    class Counting(RungBoard):
        def decide(self, key: Any, history: Any, **kw: Any) -> bool:
            asked.append((key, int(history[-1]["epoch"])))
            return board.decide(key, history, **kw)

    members = [Member(0.1, 2 / 3, s, trial_id=10 + s) for s in range(4)]
    should_stop = make_should_stop(members, spec, Counting(2, 2.0), key_prefix="t")
    assert should_stop is not None
    assert not should_stop(0, _history(1, 0.9, 100.0, 10.0))  # not a rung: nobody asked
    assert asked == []
    # Three good, cheap trials reach rung 2 first; the fourth is worse on every objective.
    for k in range(3):
        assert not should_stop(k, _history(2, 0.9 + 0.01 * k, 100.0 - 10 * k, 10.0 - k))
    assert should_stop(3, _history(2, 0.5, 500.0, 50.0))
    assert asked == [(10, 2), (11, 2), (12, 2), (13, 2)]
    # Asked again (a resumed pack): the same answer.
    assert should_stop(3, _history(2, 0.5, 500.0, 50.0))


def test_a_trial_seeded_on_the_board_is_not_ranked_against_itself() -> None:
    board = RungBoard(2, 2.0)
    history = [r.as_dict() for r in _history(2, 0.9, 100.0, 10.0)]
    # After a restart the board holds the trial's own rung point, but no decision yet.
    board.seed(7, history, epochs=8, params_dense=100)
    board.seed(8, [r.as_dict() for r in _history(2, 0.95, 50.0, 5.0)], epochs=8, params_dense=100)
    # Ranked against trial 8 alone (n=2, top 1): dominated, so it stops; against itself
    # and 8 (n=3, top 2) it would have been kept.
    assert board.decide(7, history, epochs=8, params_dense=100)
