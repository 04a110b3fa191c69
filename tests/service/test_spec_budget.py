"""The spec's early stopping and budget-targeted search (issue 13)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from service.presets import PRESETS
from service.spec import BudgetConstraint, BudgetSearch, SweepSpec
from tests.service.test_spec import spec

STOPPING = {"kind": "pareto", "grace_epochs": 20, "reduction_factor": 3}


def budget(constraint: dict[str, Any], n_trials: int = 6, **extra: Any) -> dict[str, Any]:
    return {"strategy": "budget", "constraint": constraint, "n_trials": n_trials, **extra}


def errors(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        SweepSpec.model_validate(data)
    return [(tuple(e["loc"]), str(e["msg"])) for e in info.value.errors()]


# ---------------------------------------------------------------- early stopping


def test_early_stopping_is_valid_with_every_strategy() -> None:
    ranges = {"lambdas": {"min": 0.01, "max": 1.0}}
    for search, extra in [
        ({"strategy": "grid"}, {}),
        ({"strategy": "random", "n_trials": 4}, ranges),
        ({"strategy": "optuna", "n_trials": 4}, ranges),
        (budget({"max_flops": 1e5}), ranges),
    ]:
        s = SweepSpec.model_validate(spec(search=search, early_stopping=STOPPING, **extra))
        assert s.early_stopping is not None
        assert (s.early_stopping.grace_epochs, s.early_stopping.reduction_factor) == (20, 3.0)


@pytest.mark.parametrize(
    ("stopping", "loc", "words"),
    [
        ({**STOPPING, "grace_epochs": 200}, "grace_epochs", "below training.epochs=200"),
        ({**STOPPING, "grace_epochs": 500}, "grace_epochs", "below training.epochs"),
        ({**STOPPING, "grace_epochs": 0}, "grace_epochs", "greater than or equal to 1"),
        ({**STOPPING, "grace_epochs": 2.5}, "grace_epochs", "integer"),
        ({**STOPPING, "reduction_factor": 1.5}, "reduction_factor", "greater than or equal to 2"),
        ({**STOPPING, "reduction_factor": math.nan}, "reduction_factor", "finite"),
        ({**STOPPING, "reduction_factor": math.inf}, "reduction_factor", "finite"),
        ({**STOPPING, "reduction_factor": "3"}, "reduction_factor", "number"),
        ({**STOPPING, "kind": "asha"}, "kind", "pareto"),
        ({**STOPPING, "patience": 3}, "patience", "Extra inputs"),
    ],
)
def test_bad_early_stopping_names_the_field(stopping: dict[str, Any], loc: str, words: str) -> None:
    found = errors(spec(early_stopping=stopping))
    assert [("early_stopping", loc)] == [e[0][:2] for e in found]
    assert words in found[0][1]


def test_grace_epochs_must_be_a_multiple_of_eval_every() -> None:
    # Every epoch evaluated (the default): any grace period below the epochs holds.
    s = SweepSpec.model_validate(spec(early_stopping={**STOPPING, "grace_epochs": 7}))
    assert s.training.eval_every == 1 and s.early_stopping is not None
    # Every 5th: a rung at epoch 7 would have no test accuracy to rank on.
    every_5 = {"epochs": 60, "eval_every": 5}
    found = errors(spec(training=every_5, early_stopping={**STOPPING, "grace_epochs": 7}))
    assert [e[0][:2] for e in found] == [("early_stopping", "grace_epochs")]
    assert "multiple of training.eval_every=5" in found[0][1]
    ok = spec(training=every_5, early_stopping={**STOPPING, "grace_epochs": 10})
    assert SweepSpec.model_validate(ok).training.eval_every == 5


# ---------------------------------------------------------------- budget search


def test_budget_search_defaults_and_helpers() -> None:
    s = SweepSpec.model_validate(
        spec(search=budget({"max_flops": 1e5}, 5), lambdas={"min": 0.01, "max": 2.0})
    )
    assert isinstance(s.search, BudgetSearch)
    assert (s.strategy, s.n_trials, s.search.seed, s.initial_trials()) == ("budget", 5, 0, [])
    assert s.lambda_bounds() == (0.01, 2.0)
    s.check_limits(5)
    constraint = s.search.constraint
    assert (constraint.kind, constraint.value, constraint.measure) == ("max_flops", 1e5, "flops")
    # Stored and fingerprinted with its one key; it reads back equal.
    dumped = s.model_dump(mode="json")
    assert dumped["search"] == {
        "strategy": "budget",
        "constraint": {"max_flops": 1e5},
        "n_trials": 5,
        "seed": 0,
    }
    assert SweepSpec.model_validate(dumped) == s
    assert SweepSpec.model_validate_json(s.model_dump_json()).fingerprint() == s.fingerprint()


@pytest.mark.parametrize(
    ("lambdas", "bounds"),
    [
        ({"min": 0.05, "max": 0.5}, (0.05, 0.5)),
        ({"logspace": [-3, 1, 9]}, (1e-3, 10.0)),
        ([0.3, 0.01, 2.0], (0.01, 2.0)),
        ([0.4], (0.4, 0.4)),
    ],
)
def test_lambda_bounds_of_every_form(lambdas: Any, bounds: tuple[float, float]) -> None:
    s = SweepSpec.model_validate(spec(search=budget({"max_params": 5e4}), lambdas=lambdas))
    assert s.lambda_bounds() == pytest.approx(bounds)


def test_constraint_satisfied_by() -> None:
    flops = BudgetConstraint(max_flops=1000)
    assert flops.satisfied_by({"flops": 1000}) and flops.satisfied_by({"flops": 999.5})
    assert not flops.satisfied_by({"flops": 1000.5})
    params = BudgetConstraint(max_params=50)
    assert params.is_upper_bound and params.satisfied_by({"params": 50, "flops": 1e9})
    sparsity = BudgetConstraint(min_sparsity=0.9)
    assert (sparsity.kind, sparsity.measure, sparsity.is_upper_bound) == (
        "min_sparsity",
        "sparsity",
        False,
    )
    assert sparsity.satisfied_by({"sparsity": 0.9}) and not sparsity.satisfied_by({"sparsity": 0.8})
    for missing in ({}, {"sparsity": None}, {"sparsity": math.nan}, {"sparsity": "x"}):
        assert not sparsity.satisfied_by(missing)


def _budget_error(constraint: dict[str, Any], **overrides: Any) -> tuple[Any, str]:
    found = errors(spec(search=budget(constraint), **overrides))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("constraint", "key", "words"),
    [
        # The smallest 784-300-100-10 MLP keeps one unit per layer: 24 parameters, 36 FLOPs.
        ({"max_flops": 35}, "max_flops", "below the 36 FLOPs of the smallest mlp on mnist"),
        ({"max_params": 23.5}, "max_params", "below the 24 parameters of the smallest mlp"),
        ({"min_sparsity": 0.99995}, "min_sparsity", "above the sparsity 0.99991"),
        ({"min_sparsity": 1.0}, "min_sparsity", "less than 1"),
        ({"min_sparsity": 0}, "min_sparsity", "greater than 0"),
        ({"min_sparsity": -0.5}, "min_sparsity", "greater than 0"),
        ({"max_flops": 0}, "max_flops", "greater than 0"),
        ({"max_params": -1}, "max_params", "greater than 0"),
        ({"max_flops": math.nan}, "max_flops", "finite"),
        ({"max_flops": math.inf}, "max_flops", "finite"),
        ({"max_params": "1e6"}, "max_params", "number"),
        ({"max_latency": 3}, "max_latency", "Extra inputs"),
    ],
)
def test_bad_constraints_name_the_field(constraint: dict[str, Any], key: str, words: str) -> None:
    loc, msg = _budget_error(constraint)
    assert loc == ("search", "budget", "constraint", key)
    assert words in msg


def test_two_kinds_of_constraint_at_once_are_refused() -> None:
    loc, msg = _budget_error({"max_flops": 1e5, "min_sparsity": 0.5})
    assert loc == ("search", "budget", "constraint")
    assert "search.constraint takes one kind of constraint, got max_flops and min_sparsity" in msg
    loc, msg = _budget_error({})
    assert loc == ("search", "budget", "constraint") and "needs one of" in msg


def test_feasible_edges_are_accepted() -> None:
    smallest = SweepSpec.model_validate(spec()).model_size(smallest=True)
    dense = SweepSpec.model_validate(spec()).model_size()
    top = 1 - smallest.params / dense.params
    for constraint in (
        {"max_flops": smallest.flops},
        {"max_params": smallest.params},
        {"min_sparsity": top},
        {"max_flops": dense.flops * 10},  # at or above dense: trivially feasible
        {"max_params": dense.params},
    ):
        SweepSpec.model_validate(spec(search=budget(constraint)))


def test_feasibility_follows_architecture_and_dataset() -> None:
    lenet = {"model": {"arch": "lenet5"}, "dataset": "mnist"}
    smallest = SweepSpec.model_validate(spec(**lenet)).model_size(smallest=True)
    SweepSpec.model_validate(spec(search=budget({"max_flops": smallest.flops}), **lenet))
    loc, msg = _budget_error({"max_flops": smallest.flops - 1}, **lenet)
    assert loc[-1] == "max_flops" and "smallest lenet5 on mnist" in msg
    wrn = {"model": {"arch": "wrn", "depth": 10, "width": 1}, "dataset": "cifar100"}
    smallest = SweepSpec.model_validate(spec(**wrn)).model_size(smallest=True)
    loc, msg = _budget_error({"max_params": smallest.params - 1}, **wrn)
    assert loc[-1] == "max_params" and "smallest wrn on cifar100" in msg


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"search": budget({"max_flops": 1e5}, 2)}, ("search", "budget", "n_trials")),
        ({"search": {"strategy": "budget", "n_trials": 5}}, ("search", "budget", "constraint")),
        ({"search": budget({"max_flops": 1e5}, seed=-1)}, ("search", "budget", "seed")),
        (
            {"search": budget({"max_flops": 1e5}), "betas": {"min": 0.5, "max": 0.7}},
            ("betas",),
        ),
        (
            {"search": budget({"max_flops": 1e5}), "training": {"weight_decay": [0, 5e-4]}},
            ("training",),
        ),
    ],
)
def test_other_bad_budget_specs(overrides: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert loc in [e[0] for e in errors(spec(**overrides))]


def test_lambda_ranges_still_need_a_sampling_or_budget_strategy() -> None:
    found = errors(spec(lambdas={"min": 0.1, "max": 1.0}))
    assert found[0][0] == ("lambdas",)
    assert "'random', 'budget' or 'optuna'" in found[0][1]


# ---------------------------------------------------------------- old specs keep their meaning


def test_specs_without_the_new_fields_keep_their_fingerprint() -> None:
    old = SweepSpec.model_validate(spec())
    assert old.early_stopping is None
    # The fingerprint of this spec before issue 13 added early_stopping.
    assert old.fingerprint() == "5511c29220157f339a94b294b3dda3128a02dc530ea60bd3b0dfc2e5d695b523"
    assert "early_stopping" not in json.loads(old.canonical_json())
    assert old.model_dump(mode="json")["early_stopping"] is None  # stored with its default
    # training.eval_every came later still: at its default it is left out as well.
    assert "eval_every" not in json.loads(old.canonical_json())["training"]
    every_2 = SweepSpec.model_validate(spec(training={"eval_every": 2}))
    assert json.loads(every_2.canonical_json())["training"]["eval_every"] == 2
    assert every_2.fingerprint() != old.fingerprint()
    stopping = SweepSpec.model_validate(spec(early_stopping=STOPPING))
    assert json.loads(stopping.canonical_json())["early_stopping"] == {
        "kind": "pareto",
        "grace_epochs": 20,
        "reduction_factor": 3.0,
    }
    assert stopping.fingerprint() == hashlib.sha256(stopping.canonical_json().encode()).hexdigest()
    assert stopping.fingerprint() != old.fingerprint()


def test_presets_still_validate() -> None:
    for preset in PRESETS:
        s = preset.sweep_spec()
        assert s.early_stopping is None and s.strategy == "grid"
        assert SweepSpec.model_validate(s.model_dump(mode="json")) == s
