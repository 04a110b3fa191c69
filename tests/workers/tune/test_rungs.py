"""The multi-objective rung rule of Pareto early stopping (workers.tune.rungs, issue 13)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from workers.tune.rungs import (
    RungBoard,
    RungPoint,
    keep_at_rung,
    predict_final_flops,
    rank_order,
    rung_epochs,
)

# ---------------------------------------------------------------- rung epochs


@pytest.mark.parametrize(
    ("grace", "eta", "epochs", "expected"),
    [
        (1, 3, 12, [1, 3, 9]),
        (1, 3, 9, [1, 3]),  # the last epoch is the end, not a rung
        (1, 3, 10, [1, 3, 9]),
        (2, 2, 16, [2, 4, 8]),
        (1, 1.5, 10, [1, 2, 3, 5, 8]),  # 1.5 -> 2, 2.25 -> 2 (duplicate), 3.375 -> 3, ...
        (4, 3, 4, []),  # grace at the end: no rung
        (5, 3, 3, []),
        (1, 2.5, 100, [1, 3, 6, 16, 39, 98]),  # 2.5 -> 3 (half up), 6.25, 15.6, 39.06, 97.7
    ],
)
def test_rung_epochs(grace: int, eta: float, epochs: int, expected: list[int]) -> None:
    assert rung_epochs(grace, eta, epochs) == expected


@pytest.mark.parametrize(("grace", "eta"), [(0, 3), (-1, 3), (1, 1), (1, 0.5), (1, math.nan)])
def test_rung_epochs_rejects_bad_arguments(grace: int, eta: float) -> None:
    with pytest.raises(ValueError):
        rung_epochs(grace, eta, 10)


# ---------------------------------------------------------------- ranking and keep rule


def _p(key: Any, accuracy: float, flops: float, sparsity: float | None = None) -> RungPoint:
    """A point whose sparsity follows its FLOPs unless given."""
    return RungPoint(key, accuracy, flops, 1.0 - flops if sparsity is None else sparsity)


def test_alone_or_only_itself_recorded_continues() -> None:
    assert keep_at_rung(_p("a", 0.1, 1.0), [], eta=3)
    assert keep_at_rung(_p("a", 0.1, 1.0), [_p("a", 0.9, 0.1)], eta=3)  # own key ignored


def test_dominated_trial_stops() -> None:
    recorded = [_p("a", 0.95, 0.5), _p("b", 0.94, 0.4)]
    assert not keep_at_rung(_p("c", 0.93, 0.6), recorded, eta=3)
    assert not keep_at_rung(_p("c", 0.93, 0.6), recorded, eta=1.5)  # top 2 = the first front


def test_dominating_trial_continues() -> None:
    recorded = [_p("a", 0.95, 0.5), _p("b", 0.94, 0.4), _p("c", 0.90, 0.6)]
    assert keep_at_rung(_p("d", 0.96, 0.3), recorded, eta=4)


def test_non_dominated_newcomer_in_second_place_stops_with_top_one() -> None:
    # n = 2, η = 3: top 1. Both non-dominated; the ε-net seed is the most accurate.
    assert not keep_at_rung(_p("b", 0.90, 0.2), [_p("a", 0.95, 0.5)], eta=3)
    assert keep_at_rung(_p("b", 0.97, 0.6), [_p("a", 0.95, 0.5)], eta=3)
    # η = 2: top 1 of 2 as well; η = 1.5: top 2 of 2, everyone continues.
    assert keep_at_rung(_p("b", 0.90, 0.2), [_p("a", 0.95, 0.5)], eta=1.5)


def test_a_whole_front_keeps_its_spread_out_points() -> None:
    # Seven points on one front, accuracy falling as FLOPs fall. η = 7/3: top 3 of 7.
    front = [_p(i, 0.99 - 0.01 * i, 0.9 - 0.1 * i) for i in range(7)]
    # MO-ASHA's ε-net order on rank-normalised objectives: most accurate, then the far end,
    # then the middle.
    order = rank_order([[-p.accuracy, p.flops] for p in front])
    assert order[:3] == [0, 6, 3]
    kept = [i for i, p in enumerate(front) if keep_at_rung(p, front[:i] + front[i + 1 :], 7 / 3)]
    assert kept == [0, 3, 6]


def test_front_first_then_dominated() -> None:
    points = [_p(0, 0.95, 0.5), _p(1, 0.94, 0.6), _p(2, 0.90, 0.2), _p(3, 0.89, 0.3)]
    order = rank_order([[-p.accuracy, p.flops] for p in points])
    assert set(order[:2]) == {0, 2} and set(order[2:]) == {1, 3}


def test_both_objective_pairs_must_keep_it() -> None:
    # "d" is the sparsest by expected L0 but the costliest in FLOPs: the (accuracy, FLOPs)
    # pair stops it although the (accuracy, sparsity) pair would keep it.
    recorded = [_p("a", 0.95, 0.5, 0.5), _p("b", 0.95, 0.4, 0.6), _p("c", 0.95, 0.45, 0.55)]
    newcomer = _p("d", 0.95, 0.9, 0.9)
    assert not keep_at_rung(newcomer, recorded, eta=3)
    # and the mirror image: cheapest in FLOPs, least sparse
    assert not keep_at_rung(_p("d", 0.95, 0.1, 0.1), recorded, eta=3)
    # best on both pairs: kept
    assert keep_at_rung(_p("d", 0.95, 0.1, 0.9), recorded, eta=3)


def test_ties_with_identical_values_are_kept() -> None:
    a = _p("a", 0.95, 0.5)
    assert keep_at_rung(_p("b", 0.95, 0.5), [a], eta=3)
    # Three copies of the best point and two worse ones, top 1 of 5: all copies continue.
    recorded = [a, _p("b", 0.95, 0.5), _p("c", 0.90, 0.7), _p("d", 0.80, 0.8)]
    assert keep_at_rung(_p("e", 0.95, 0.5), recorded, eta=5)
    assert not keep_at_rung(_p("e", 0.90, 0.7), recorded[:2] + recorded[3:], eta=5)


def test_rank_order_rejects_nan_and_handles_empty() -> None:
    assert rank_order(np.zeros((0, 2))) == []
    with pytest.raises(ValueError):
        rank_order([[0.1, math.nan]])


# ---------------------------------------------------------------- FLOPs prediction


def _exp_curve(a: float, b: float, c: float, upto: int) -> list[tuple[int, float]]:
    return [(t, a + b * math.exp(-c * t)) for t in range(1, upto + 1)]


@pytest.mark.parametrize(("a", "b", "c"), [(0.05, 0.7, 0.4), (0.3, 0.6, 0.9), (0.0, 1.0, 0.2)])
@pytest.mark.parametrize("upto", [3, 5, 8])
def test_prediction_of_an_exponential_curve_is_its_final_value(
    a: float, b: float, c: float, upto: int
) -> None:
    curve = _exp_curve(a, b, c, upto)
    predicted = predict_final_flops(curve, 20)
    assert predicted == pytest.approx(a + b * math.exp(-c * 20), rel=1e-9, abs=1e-12)
    assert abs(predicted - (a + b * math.exp(-c * 20))) < abs(curve[-1][1] - a)


def test_prediction_with_noise_is_closer_than_the_last_value() -> None:
    rng = np.random.default_rng(0)
    errors_pred, errors_last = [], []
    for _ in range(50):
        a, b, c = rng.uniform(0.02, 0.3), rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.6)
        curve = [(t, f * (1 + rng.normal(0, 1e-3))) for t, f in _exp_curve(a, b, c, 4)]
        final = a + b * math.exp(-c * 12)
        errors_pred.append(abs(predict_final_flops(curve, 12) - final))
        errors_last.append(abs(curve[-1][1] - final))
    assert np.median(errors_pred) < 0.5 * np.median(errors_last)


@pytest.mark.parametrize(
    "curve",
    [
        [(1, 0.8)],  # too short
        [(1, 0.8), (2, 0.7)],
        [(1, 0.8), (2, 0.7), (3, 0.5), (4, 0.2)],  # still accelerating
        [(1, 0.8), (2, 0.8), (3, 0.8)],  # flat
        [(1, 0.8), (2, 0.6), (3, 0.65), (4, 0.6)],  # not monotone
    ],
)
def test_prediction_falls_back_to_the_last_value(curve: list[tuple[int, float]]) -> None:
    assert predict_final_flops(curve, 12) == curve[-1][1]


def test_prediction_is_clamped_and_order_free() -> None:
    curve = _exp_curve(-0.5, 1.0, 0.3, 4)  # asymptote below zero
    assert predict_final_flops(curve, 50) == 0.0
    assert predict_final_flops(list(reversed(curve)), 50) == 0.0
    assert predict_final_flops([(1, 0.4), (2, 0.45), (3, 0.5)], 12) == 0.4  # ≤ first value
    assert predict_final_flops(_exp_curve(0.1, 0.5, 0.5, 4), 4) == pytest.approx(
        0.1 + 0.5 * math.exp(-2.0)
    )  # at the end already: the last value
    with pytest.raises(ValueError):
        predict_final_flops([], 12)


# ---------------------------------------------------------------- the board

DENSE = 1000


def _history(
    accuracies: list[float], flops: list[float], l0: list[float] | None = None
) -> list[dict[str, Any]]:
    l0 = l0 if l0 is not None else [DENSE * f for f in flops]
    return [
        {"epoch": e + 1, "accuracy": a, "expected_flops": f, "expected_l0": n, "loss": 0.1}
        for e, (a, f, n) in enumerate(zip(accuracies, flops, l0, strict=True))
    ]


def test_board_decides_only_at_rungs_and_caches() -> None:
    board = RungBoard(grace=1, eta=3)
    good = _history([0.9, 0.95, 0.97], [0.8, 0.6, 0.5])
    bad = _history([0.8, 0.85, 0.86], [0.9, 0.8, 0.7])
    kw: dict[str, Any] = {"epochs": 12, "params_dense": DENSE}
    assert board.decide("good", good[:1], **kw) is False  # rung 1, alone: continues
    assert board.decide("bad", bad[:1], **kw) is True  # rung 1, dominated: stops
    assert board.decide("bad", bad[:2], **kw) is False  # epoch 2: not a rung
    assert board.decide("good", good[:3], **kw) is False  # rung 3
    # a repeated ask returns the first decision, whatever the history now says
    assert board.decide("bad", _history([0.99], [0.01]), **kw) is True
    assert [p.key for p in board.points(1)] == ["good", "bad"]
    assert board.points(1)[1].sparsity == pytest.approx(1 - 0.9)
    assert board.decide("x", [], **kw) is False


def test_board_without_accuracy_decides_nothing() -> None:
    board = RungBoard(grace=1, eta=3)
    history = _history([0.9], [0.5])
    history[0]["accuracy"] = None
    assert board.decide("a", history, epochs=12, params_dense=DENSE) is False
    assert board.points(1) == []


def test_board_uses_the_last_evaluated_accuracy() -> None:
    board = RungBoard(grace=3, eta=3)
    history = _history([0.9, 0.92, 0.93], [0.5, 0.4, 0.35])
    history[2]["accuracy"] = None
    board.decide("a", history, epochs=12, params_dense=DENSE)
    assert board.points(3)[0].accuracy == 0.92


def test_board_seeding_rebuilds_the_same_board() -> None:
    kw: dict[str, Any] = {"epochs": 12, "params_dense": DENSE}
    trials = {
        f"t{i}": _history([0.9 - 0.01 * i + 0.01 * e for e in range(5)], [0.9 - 0.1 * i] * 5)
        for i in range(4)
    }
    live = RungBoard(grace=1, eta=3)
    for key, history in trials.items():
        for e in range(1, 5):
            live.decide(key, history[:e], **kw)
    restarted = RungBoard(grace=1, eta=3)
    for key, history in trials.items():
        restarted.seed(key, history[:4], **kw)
        restarted.seed(key, history[:4], **kw)  # twice: still one point per key
    for rung in (1, 3):
        assert restarted.points(rung) == live.points(rung)
    assert restarted.decisions == {}
    newcomer = _history([0.5] * 3, [0.95] * 3)
    assert restarted.decide("new", newcomer, **kw) == live.decide("new", newcomer, **kw)
    assert restarted.decide("new", newcomer, **kw) is True


def test_board_prediction_changes_the_ranking() -> None:
    kw: dict[str, Any] = {"epochs": 12, "params_dense": DENSE}
    flat = _history([0.9, 0.9, 0.9], [0.5, 0.5, 0.5], l0=[500, 500, 500])
    # 0.4 + 0.4·0.5^e: decrements 0.2, 0.1 -> settles at 0.4; sparser by expected L0
    falling_h = _history([0.9, 0.9, 0.9], [0.8, 0.6, 0.5 + 1e-9], l0=[400, 400, 400])
    plain, predicting = RungBoard(grace=3, eta=3), RungBoard(grace=3, eta=3, predict=True)
    for board in (plain, predicting):
        assert board.decide("flat", flat, **kw) is False
    # Without prediction the falling trial has more FLOPs at the same accuracy: it stops.
    assert plain.decide("falling", falling_h, **kw) is True
    # Predicted, its FLOPs settle near 0.4 < 0.5: it is on top and continues.
    assert predicting.decide("falling", falling_h, **kw) is False
    assert predicting.points(3)[1].flops == pytest.approx(0.4, abs=1e-3)
