"""Spec → Ray Tune search translation (no Ray cluster needed)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from l0models import ModelConfig, WRNConfig, synthetic_dataset
from service.spec import SweepSpec
from workers.tune.protocol import Member, members_from_config, pack_config
from workers.tune.search import (
    OBJECTIVES,
    grid_param_space,
    optuna_distributions,
    optuna_searcher,
    plan_packs,
    resolve_pack_size,
)
from workers.tune.spec_adapter import arch_config


def _spec(**overrides: Any) -> SweepSpec:
    body: dict[str, Any] = {
        "model": {"arch": "mlp", "hidden": [30, 20]},
        "dataset": "synthetic",
        "lambdas": [0.1, 1.0],
        "training": {"epochs": 2},
    }
    body.update(overrides)
    return SweepSpec.model_validate(body)


def _config(spec: SweepSpec) -> ModelConfig:
    return arch_config(spec, synthetic_dataset(n_train=10, n_test=10))


def _members(n: int) -> list[Member]:
    return [Member(lam=0.1 * (i + 1), beta=2 / 3, seed=i, trial_id=100 + i) for i in range(n)]


def test_plan_packs_groups_in_order_and_keeps_every_member_once() -> None:
    members = _members(7)
    packs = plan_packs(members, 3)
    assert [len(p) for p in packs] == [3, 3, 1]
    assert [m for p in packs for m in p] == members
    assert plan_packs(members, 1) == [[m] for m in members]
    with pytest.raises(ValueError):
        plan_packs(members, 0)


def test_pack_size_follows_fuse_but_never_for_optuna_or_wrn() -> None:
    four, one = _spec(fuse=4), _spec(fuse=1)
    assert resolve_pack_size(four, config=_config(four)) == 4
    assert resolve_pack_size(one, config=_config(one)) == 1
    optuna_spec = _spec(fuse=4, search={"strategy": "optuna", "n_trials": 3})
    assert resolve_pack_size(optuna_spec, config=_config(optuna_spec)) == 1
    wrn = _spec(model={"arch": "wrn", "depth": 10, "width": 1}, dataset="cifar10", fuse=4)
    # The WRN is not fusable by l0models' own rule (one definition, no list of arch names).
    assert resolve_pack_size(wrn, config=WRNConfig(depth=10, width=1)) == 1


def test_auto_fuses_only_with_full_packs_for_every_slot() -> None:
    auto = _spec(fuse="auto")
    config = _config(auto)
    # 40 members on 2 slots: packs of 16 keep both slots busy with measured-size packs.
    assert resolve_pack_size(auto, config=config, n_members=40, slots=2, auto_size=16) == 16
    # 6 members on 2 slots: fusing would leave a slot idle or use unmeasured small packs.
    assert resolve_pack_size(auto, config=config, n_members=6, slots=2, auto_size=16) == 1
    # The device rule says fusion does not pay (e.g. LeNet-5 on CPU).
    assert resolve_pack_size(auto, config=config, n_members=99, auto_size=1) == 1


def test_grid_param_space_runs_each_pack_once_with_its_resume_checkpoint() -> None:
    packs = plan_packs(_members(5), 2)
    space = grid_param_space(packs, {1: "/ckpt/pack1"})
    grid = space["pack"]["grid_search"]
    assert len(grid) == 3
    assert [m["trial_id"] for g in grid for m in g["members"]] == [100, 101, 102, 103, 104]
    assert [g["resume_from"] for g in grid] == [None, "/ckpt/pack1", None]
    # The trainable reads back exactly the members that were packed.
    assert members_from_config({"pack": grid[1]}) == packs[1]


def test_optuna_config_is_one_member_without_row() -> None:
    assert members_from_config({"lam": 0.5, "beta": 0.6, "seed": 3}) == [
        Member(lam=0.5, beta=0.6, seed=3, trial_id=None)
    ]
    config = pack_config([Member(1.0, 0.5, 0, trial_id=7)], resume_from=None)
    assert config == {
        "members": [
            {
                "lam": 1.0,
                "beta": 0.5,
                "seed": 0,
                "trial_id": 7,
                "weight_decay": None,
                "stop_at": None,
            }
        ],
        "resume_from": None,
    }
    # A budget probe carries the epoch it stops at.
    probe = members_from_config({"lam": 0.5, "beta": 0.6, "seed": 3, "stop_at": 2})
    assert probe == [Member(lam=0.5, beta=0.6, seed=3, stop_at=2)]


def test_optuna_space_from_ranges_lists_and_logspace() -> None:
    spec = _spec(
        search={"strategy": "optuna", "n_trials": 4},
        lambdas={"min": 0.01, "max": 10.0},
        betas={"min": 0.5, "max": 0.9},
        seeds=[0, 1],
    )
    space = optuna_distributions(spec)
    assert space["lam"] == optuna.distributions.FloatDistribution(0.01, 10.0, log=True)
    assert space["beta"] == optuna.distributions.FloatDistribution(0.5, 0.9)
    assert space["seed"] == optuna.distributions.CategoricalDistribution([0, 1])

    logspace = _spec(search={"strategy": "optuna", "n_trials": 4}, lambdas={"logspace": [-2, 1, 4]})
    choices = optuna_distributions(logspace)["lam"].choices  # type: ignore[attr-defined]
    # The same λ values the grid of this spec would hold.
    expected = [p.lam for p in SweepSpec.model_validate(logspace).expand_grid()]
    assert list(choices) == expected


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_optuna_searcher_is_multi_objective_and_warm_started(sampler: str) -> None:
    spec = _spec(
        search={"strategy": "optuna", "n_trials": 5, "sampler": sampler, "seed": 1},
        lambdas={"min": 0.01, "max": 10.0},
    )
    done = [
        (Member(0.1, 2 / 3, 0, trial_id=1), {"accuracy": 0.9, "sparsity": 0.1, "flops": 1000.0}),
        (Member(1.0, 2 / 3, 0, trial_id=2), {"accuracy": 0.8, "sparsity": 0.5, "flops": 500.0}),
        # Outside the space (λ > max): cannot be told to the sampler, skipped.
        (Member(50.0, 2 / 3, 0, trial_id=3), {"accuracy": 0.7, "sparsity": 0.9, "flops": 1.0}),
    ]
    searcher = optuna_searcher(spec, completed=done)
    assert searcher.metric == [name for name, _ in OBJECTIVES]
    assert searcher.mode == ["max", "max", "min"]
    config = searcher.suggest("t1")
    assert config is not None
    assert 0.01 <= config["lam"] <= 10.0 and config["seed"] == 0
    study = searcher._ot_study  # the study OptunaSearch loaded from our storage
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.values for t in finished) == [[0.8, 0.5, 500.0], [0.9, 0.1, 1000.0]]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE", "MINIMIZE"]
    # The finished trial goes back to Optuna with all three objectives.
    searcher.on_trial_complete(
        "t1", result={"accuracy": 0.95, "sparsity": 0.2, "flops": 800.0, "kind": "final"}
    )
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 3
