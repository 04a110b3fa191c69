"""The paper's recipe fields of the spec (issue 11): per-layer λ scales and drop rates,
SGD/Nesterov and LR milestones, weight averaging, and weight decay as a grid dimension."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from service.spec import SweepSpec, TrialPoint

BASE: dict[str, Any] = {
    "model": {"arch": "mlp", "hidden": [300, 100]},
    "dataset": "mnist",
    "lambdas": [0.1, 1.0],
    "seeds": [0, 1],
}


def spec(**overrides: Any) -> SweepSpec:
    return SweepSpec.model_validate({**BASE, **overrides})


def errors(**overrides: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        spec(**overrides)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_a_spec_without_the_new_fields_means_what_it_meant() -> None:
    t = spec().training
    assert (t.weight_decay, t.droprate_init, t.ema, t.lr_milestones) == (5e-4, None, None, None)
    assert (t.optimizer, t.momentum, t.nesterov, t.lr_gamma) == ("adam", 0.9, True, 0.2)
    assert spec().expand_grid()[0] == TrialPoint(0.1, 2 / 3, 0)  # weight_decay None
    assert spec().trial_weight_decay(spec().expand_grid()[0]) == 5e-4


def test_weight_decay_list_is_a_grid_dimension_fastest() -> None:
    s = spec(training={"weight_decay": [5e-4, 0]})
    assert s.n_trials == 2 * 1 * 2 * 2
    grid = s.expand_grid()
    assert grid[:3] == [
        TrialPoint(0.1, 2 / 3, 0, 5e-4),
        TrialPoint(0.1, 2 / 3, 0, 0.0),
        TrialPoint(0.1, 2 / 3, 1, 5e-4),
    ]
    assert [s.trial_weight_decay(p) for p in grid[:2]] == [5e-4, 0.0]
    random = spec(
        training={"weight_decay": [1e-4, 1e-3]}, search={"strategy": "random", "n_trials": 20}
    )
    assert {p.weight_decay for p in random.initial_trials()} == {1e-4, 1e-3}
    assert errors(training={"weight_decay": [1e-4, 1e-4]}) == [
        (("training", "weight_decay"), "Value error, weight_decay has duplicate values")
    ]
    [(loc, msg)] = errors(
        training={"weight_decay": [1e-4, 1e-3]}, search={"strategy": "optuna", "n_trials": 3}
    )
    assert loc == ("training",) and "training.weight_decay as a list" in msg


@pytest.mark.parametrize(
    ("model", "n"),
    [
        ({"arch": "mlp", "hidden": [300, 100]}, 3),
        ({"arch": "lenet5"}, 4),
        ({"arch": "wrn", "depth": 16, "width": 2}, 6),
    ],
)
def test_lambda_scales_one_per_gated_layer(model: dict[str, Any], n: int) -> None:
    dataset = "cifar10" if model["arch"] == "wrn" else "mnist"
    ok = spec(model={**model, "lambda_scales": [2.0] * n}, dataset=dataset)
    assert ok.model.lambda_scales == [2.0] * n
    assert ok.model.gated_layers == n
    [(loc, msg)] = errors(model={**model, "lambda_scales": [2.0] * (n + 1)}, dataset=dataset)
    assert loc == ("model", model["arch"], "lambda_scales")
    assert msg == f"Value error, lambda_scales needs one value per gated layer ({n}), got {n + 1}"
    zeros = errors(model={**model, "lambda_scales": [0.0] * n}, dataset=dataset)
    assert {loc[:3] for loc, _ in zeros} == {("model", model["arch"], "lambda_scales")}


def test_droprate_init_null_float_or_one_per_gated_layer() -> None:
    assert spec(training={"droprate_init": 0.3}).training.droprate_init == 0.3
    assert spec(training={"droprate_init": [0.2, 0.5, 0.5]}).training.droprate_init == [
        0.2,
        0.5,
        0.5,
    ]
    [(loc, msg)] = errors(training={"droprate_init": [0.2, 0.5]})
    assert loc == ("training",)
    assert "training.droprate_init needs one value per gated layer (3), got 2" in msg
    bad = errors(training={"droprate_init": [0.2, 1.0, 0.5]})
    assert {loc[:2] for loc, _ in bad} == {("training", "droprate_init")}


def test_optimizer_schedule_and_ema_fields() -> None:
    t = spec(
        training={
            "optimizer": "sgd",
            "lr": 0.1,
            "momentum": 0.9,
            "nesterov": True,
            "lr_milestones": [60, 120, 160],
            "lr_gamma": 0.2,
            "ema": 0.99,
        }
    ).training
    assert (t.lr_milestones, t.ema) == ([60, 120, 160], 0.99)
    assert errors(training={"lr_milestones": [120, 60]}) == [
        (
            ("training", "lr_milestones"),
            "Value error, lr_milestones must be strictly increasing epochs",
        )
    ]
    assert errors(training={"optimizer": "sgd", "momentum": 0.0}) == [
        (("training",), "Value error, training.nesterov needs momentum > 0 (or nesterov false)")
    ]
    assert spec(training={"optimizer": "sgd", "momentum": 0.0, "nesterov": False})
    assert (
        spec().training.eval_every == 1
        and spec(training={"eval_every": 5}).training.eval_every == 5
    )
    bad_fields = (
        {"ema": 1.0},
        {"ema": -0.1},
        {"lr_gamma": 0},
        {"momentum": 1.0},
        {"eval_every": 0},
    )
    for bad in bad_fields:
        [(loc, _)] = errors(training=bad)
        assert loc == ("training", next(iter(bad)))


@pytest.mark.parametrize(
    "training",
    [
        {"droprate_init": "0.5"},
        {"droprate_init": [0.2, "0.5", 0.5]},
        {"weight_decay": ["1e-4"]},
        {"ema": "0.9"},
        {"momentum": "0.9"},
        {"nesterov": "yes"},
        {"lr_gamma": True},
        {"lr_milestones": ["60"]},
        {"ema": float("nan")},
        {"eval_every": "2"},
        {"eval_every": 2.5},
    ],
)
def test_recipe_numbers_are_strict(training: dict[str, Any]) -> None:
    assert {loc[:2] for loc, _ in errors(training=training)} == {("training", next(iter(training)))}


def test_lambda_scales_are_strict_numbers() -> None:
    bad = errors(model={"arch": "lenet5", "lambda_scales": [100, "5", 1, 100]})
    assert {loc[:3] for loc, _ in bad} == {("model", "lenet5", "lambda_scales")}
