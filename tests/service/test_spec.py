from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from service.errors import SpecLimitError
from service.spec import SweepSpec, TrialPoint

BASE: dict[str, Any] = {
    "name": "mnist-mlp",
    "model": {"arch": "mlp", "hidden": [300, 100]},
    "dataset": "mnist",
    "lambdas": [0.01, 0.1, 1.0],
    "betas": [0.6667],
    "seeds": [0],
    "training": {
        "epochs": 200,
        "batch_size": 100,
        "lr": 0.001,
        "weight_decay": 0.0005,
        "droprate_init": 0.5,
    },
    "search": {"strategy": "grid"},
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
    "fuse": "auto",
    "max_concurrent_trials": None,
}


def spec(**overrides: Any) -> dict[str, Any]:
    return {**BASE, **overrides}


def test_design_example_is_valid_and_expands_lambda_beta_seed() -> None:
    s = SweepSpec.model_validate(spec(betas=[0.5, 0.6667], seeds=[0, 1]))
    assert s.n_trials == 12
    grid = s.expand_grid()
    assert grid[:3] == [
        TrialPoint(0.01, 0.5, 0),
        TrialPoint(0.01, 0.5, 1),
        TrialPoint(0.01, 0.6667, 0),
    ]
    assert len(set(grid)) == 12


def test_defaults_and_logspace() -> None:
    s = SweepSpec.model_validate(
        {"model": {"arch": "lenet5"}, "dataset": "mnist", "lambdas": {"logspace": [-2, 0, 3]}}
    )
    assert s.display_name == "mnist-lenet5"
    assert [p.lam for p in s.expand_grid()] == pytest.approx([0.01, 0.1, 1.0])
    assert s.betas == [pytest.approx(2 / 3)] and s.seeds == [0]
    assert (s.fuse, s.training.optimizer, s.training.local_rep) == ("auto", "adam", False)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": {"arch": "resnet"}}, "model"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"model": {"arch": "wrn"}, "dataset": "mnist"}, "dataset"),
        ({"model": {"arch": "lenet5"}, "dataset": "cifar10"}, "dataset"),
        ({"lambdas": [0.1, -1.0]}, "lambdas"),
        ({"lambdas": [0.0]}, "lambdas"),
        ({"betas": [0.0]}, "betas"),
        ({"lambdas": []}, "lambdas"),
        ({"betas": []}, "betas"),
        ({"seeds": []}, "seeds"),
        ({"lambdas": {"min": 0.1, "max": 1.0}}, "lambdas"),  # ranges need random/optuna
        ({"lambdas": {"logspace": [0, -2, 3]}}, "lambdas"),
        ({"lambdas": [0.1, 0.1]}, "lambdas"),
        ({"training": {"epochs": 0}}, "training"),
        ({"training": {"epochs": -3}}, "training"),
        ({"training": {"optimizer": "rmsprop"}}, "training"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"model": {"arch": "mlp", "depth": 3}}, "model"),
        ({"search": {"strategy": "bayes"}}, "search"),
        ({"search": {"strategy": "random"}}, "search"),
        ({"fuse": 0}, "fuse"),
        ({"fuse": "always"}, "fuse"),
        ({"model": {"arch": "wrn", "depth": 27}, "dataset": "cifar10"}, "model"),
    ],
)
def test_bad_specs_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SweepSpec.model_validate(spec(**overrides))
    assert field in {str(e["loc"][0]) for e in info.value.errors()}


def test_arch_dataset_compatibility() -> None:
    for arch, ok in [("mlp", "mnist"), ("lenet5", "synthetic"), ("wrn", "cifar100")]:
        SweepSpec.model_validate(spec(model={"arch": arch}, dataset=ok))


def test_random_search_presamples_within_ranges_and_is_deterministic() -> None:
    data = spec(
        lambdas={"min": 1e-4, "max": 1.0},
        betas={"min": 0.4, "max": 0.8},
        seeds=[0, 1],
        search={"strategy": "random", "n_trials": 50, "seed": 3},
    )
    a = SweepSpec.model_validate(data).initial_trials()
    assert a == SweepSpec.model_validate(data).initial_trials()
    assert len(a) == 50 and {p.seed for p in a} == {0, 1}
    assert all(1e-4 <= p.lam <= 1.0 and 0.4 <= p.beta <= 0.8 for p in a)
    # log-uniform: about half the λ fall below the geometric midpoint 1e-2
    assert 10 <= sum(p.lam < 1e-2 for p in a) <= 40
    other = SweepSpec.model_validate({**data, "search": {**data["search"], "seed": 4}})
    assert other.initial_trials() != a


def test_optuna_search_has_no_initial_trials() -> None:
    s = SweepSpec.model_validate(
        spec(lambdas={"min": 1e-4, "max": 1.0}, search={"strategy": "optuna", "n_trials": 7})
    )
    assert (s.n_trials, s.initial_trials(), s.search.sampler) == (7, [], "tpe")  # type: ignore[union-attr]


def test_limits() -> None:
    s = SweepSpec.model_validate(spec(lambdas={"logspace": [-3, 0, 100]}, seeds=[0, 1]))
    assert s.n_trials == 200
    s.check_limits(200)
    with pytest.raises(SpecLimitError) as info:
        s.check_limits(199)
    assert info.value.field == ("lambdas",)
    r = SweepSpec.model_validate(
        spec(lambdas={"min": 0.1, "max": 1.0}, search={"strategy": "random", "n_trials": 9})
    )
    with pytest.raises(SpecLimitError) as info:
        r.check_limits(8)
    assert info.value.field == ("search", "n_trials")


def test_fingerprint_is_stable_and_sensitive() -> None:
    a = SweepSpec.model_validate(spec())
    assert a.fingerprint() == SweepSpec.model_validate(spec()).fingerprint()
    assert a.fingerprint() != SweepSpec.model_validate(spec(seeds=[1])).fingerprint()
    assert SweepSpec.model_validate(a.model_dump(mode="json")) == a


# ---------------------------------------------------------------- hostile input (issue 10)


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        # the synthetic set is 1x28x28: a WRN on it failed every trial
        ({"model": {"arch": "wrn", "depth": 10, "width": 1}, "dataset": "synthetic"}, "dataset"),
        # strings and booleans were coerced into numbers
        ({"lambdas": ["0.1"]}, "lambdas"),
        ({"lambdas": [True]}, "lambdas"),
        ({"betas": ["0.5"]}, "betas"),
        ({"training": {"lr": "0.001"}}, "training"),
        ({"training": {"weight_decay": True}}, "training"),
        ({"training": {"droprate_init": "0.5"}}, "training"),
        ({"resources": {"cpus_per_trial": "1"}}, "resources"),
        ({"lambdas": {"logspace": ["-2", 0, 3]}}, "lambdas"),
        # numbers that overflow training
        ({"lambdas": [1e308]}, "lambdas"),
        ({"lambdas": [1e4 * 1.01]}, "lambdas"),
        ({"lambdas": {"logspace": [-2, 5, 3]}}, "lambdas"),
        ({"betas": [1e3]}, "betas"),
        ({"training": {"lr": 1e308}}, "training"),
        ({"training": {"lr": 11.0}}, "training"),
        ({"training": {"weight_decay": 1e308}}, "training"),
        ({"training": {"weight_decay": 2.0}}, "training"),
        # non-finite numbers (1e309 parses as infinity)
        ({"lambdas": [float("nan")]}, "lambdas"),
        ({"lambdas": [float("inf")]}, "lambdas"),
        ({"training": {"lr": float("inf")}}, "training"),
        ({"training": {"weight_decay": float("nan")}}, "training"),
        # names are shown in terminals and stored as text
        ({"name": "a\x00b"}, "name"),
        ({"name": "\x1b[31mred\x1b[0m"}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": "\ud800"}, "name"),
        ({"name": "right\u202eleft"}, "name"),
    ],
)
def test_unrunnable_specs_are_refused_naming_the_field(overrides: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        SweepSpec.model_validate(spec(**overrides))
    assert loc in {str(e["loc"][0]) for e in info.value.errors()}


def test_ranges_are_bounded_like_lists() -> None:
    random = {"strategy": "random", "n_trials": 4}
    for field, limit in (("lambdas", 1e4), ("betas", 100.0)):
        ok = spec(search=random, **{field: {"min": 0.1, "max": limit}})
        SweepSpec.model_validate(ok)
        with pytest.raises(ValidationError) as info:
            SweepSpec.model_validate(spec(search=random, **{field: {"min": 0.1, "max": 2 * limit}}))
        assert info.value.errors()[0]["loc"][0] == field


def test_numbers_at_the_bounds_and_printable_names_are_accepted() -> None:
    s = SweepSpec.model_validate(
        spec(
            name="L0 sweep: λ grid [/] 日本語 ✓",
            lambdas=[1e-30, 1, 1e4],
            betas=[1e-3, 100],
            training={"epochs": 1, "lr": 10, "weight_decay": 1},
            resources={"cpus_per_trial": 2, "gpus_per_trial": 0.5},
        )
    )
    assert s.lambdas == [1e-30, 1.0, 1e4] and s.training.lr == 10.0


def test_model_size_limit() -> None:
    small = SweepSpec.model_validate(spec())
    assert small.dense_params() == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    small.check_limits(10_000, max_params_per_trial=100_000_000)
    # 16 hidden layers of 100 000 units: about 1.5e11 parameters, accepted before issue 10
    huge = SweepSpec.model_validate(spec(model={"arch": "mlp", "hidden": [100_000] * 16}))
    assert huge.dense_params() > 1e11
    with pytest.raises(SpecLimitError) as info:
        huge.check_limits(10_000, max_params_per_trial=100_000_000)
    assert info.value.field == ("model",)
    assert "max_params_per_trial=100,000,000" in str(info.value)
    wrn = SweepSpec.model_validate(
        spec(model={"arch": "wrn", "depth": 100, "width": 20}, dataset="cifar100")
    )
    with pytest.raises(SpecLimitError):
        wrn.check_limits(10_000, max_params_per_trial=100_000_000)
    huge.check_limits(10_000)  # no size limit given: only the trial count is checked
