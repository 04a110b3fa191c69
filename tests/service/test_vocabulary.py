from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, ValidationError

from service.vocabulary import (
    ARCH_DATASETS,
    DEFAULT_OBJECTIVES,
    FINISHED_TRIAL_STATUSES,
    OBJECTIVE_DIRECTIONS,
    OPEN_TRIAL_STATUSES,
    RESULT_TRIAL_STATUSES,
    Architecture,
    Dataset,
    Objective,
    SweepStatus,
    TrialStatus,
)


def test_statuses_are_their_strings() -> None:
    expected = ["pending", "running", "completed", "failed", "cancelled"]
    assert [s.value for s in SweepStatus] == expected
    assert [s.value for s in TrialStatus] == [*expected, "stopped"]  # issue 13
    assert TrialStatus.COMPLETED == "completed" and f"{SweepStatus.FAILED}" == "failed"
    assert json.dumps({"status": TrialStatus.RUNNING}) == '{"status": "running"}'
    assert repr(SweepStatus.PENDING) == "'pending'"


def test_trial_status_groups() -> None:
    assert {"completed", "stopped"} == RESULT_TRIAL_STATUSES
    assert {"completed", "stopped", "failed", "cancelled"} == FINISHED_TRIAL_STATUSES
    assert {"pending", "running"} == OPEN_TRIAL_STATUSES
    assert set(TrialStatus) == FINISHED_TRIAL_STATUSES | OPEN_TRIAL_STATUSES


def test_objectives_and_their_directions() -> None:
    assert {o.value: o.direction for o in Objective} == {
        "accuracy": "maximize",
        "sparsity": "maximize",
        "flops": "minimize",
        "params": "minimize",
    }
    assert [(o.value, o.mode) for o in DEFAULT_OBJECTIVES] == [
        ("accuracy", "max"),
        ("sparsity", "max"),
        ("flops", "min"),
    ]
    assert OBJECTIVE_DIRECTIONS["flops"] == "minimize"  # plain strings look it up too
    assert "speed" not in OBJECTIVE_DIRECTIONS


def test_architectures_and_datasets() -> None:
    assert [a.value for a in Architecture] == ["mlp", "lenet5", "wrn"]
    assert [d.value for d in Dataset] == ["mnist", "cifar10", "cifar100", "synthetic"]
    assert set(ARCH_DATASETS) == set(Architecture)
    # The synthetic set is MNIST-shaped: it fits the MLP and LeNet-5, not the WRN (issue 10).
    assert {a for a, fits in ARCH_DATASETS.items() if Dataset.SYNTHETIC in fits} == {
        Architecture.MLP,
        Architecture.LENET5,
    }


class _WithEnum(BaseModel):
    status: TrialStatus | None = None


_STATUSES = Literal["pending", "running", "completed", "failed", "cancelled", "stopped"]


class _WithLiteral(BaseModel):
    status: _STATUSES | None = None


def test_pydantic_sees_the_literal_it_replaced() -> None:
    # Same JSON schema, same validation error, same JSON output: the REST contract holds.
    assert _WithEnum.model_json_schema() == {
        **_WithLiteral.model_json_schema(),
        "title": "_WithEnum",
    }
    errors = []
    for model in (_WithEnum, _WithLiteral):
        with pytest.raises(ValidationError) as info:
            model.model_validate({"status": "done"})
        errors.append(info.value.errors(include_url=False))
    assert errors[0] == errors[1]
    parsed = _WithEnum.model_validate({"status": "failed"})
    assert parsed.status is TrialStatus.FAILED
    assert parsed.model_dump_json() == '{"status":"failed"}'
    assert _WithEnum.model_validate(parsed.model_dump()) == parsed
