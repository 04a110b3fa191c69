"""Sweep spec → Ray Tune search: packs for grid/random, an ``OptunaSearch`` for optuna.

Grid and random sweeps have their trial rows created with the sweep (``random`` points are
sampled deterministically by ``SweepSpec.initial_trials``), so Ray Tune gets them as a
``tune.grid_search`` over *packs*: each grid point is one pack of K trial rows (K = 1 unless
fused, issue 5). A grid point is therefore run exactly once, and after a crash only the rows
not yet completed are packed again. Optuna sweeps ask the sampler for each trial; the
driver-side callback creates its row when Ray Tune starts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from workers.trainable import Member, pack_config

__all__ = [
    "OBJECTIVES",
    "Pack",
    "grid_param_space",
    "optuna_distributions",
    "optuna_searcher",
    "plan_packs",
    "resolve_pack_size",
]

# Optuna's multi-objective targets: the Pareto objectives of DESIGN §4.
OBJECTIVES: tuple[tuple[str, str], ...] = (
    ("accuracy", "max"),
    ("sparsity", "max"),
    ("flops", "min"),
)
FUSABLE_ARCHS = frozenset({"mlp", "lenet5"})

Pack = list[Member]


def resolve_pack_size(
    spec: Mapping[str, Any],
    *,
    fused_available: bool,
    n_members: int = 0,
    slots: int = 1,
    auto_size: int = 1,
) -> int:
    """K for a grid/random sweep from the spec's ``fuse`` (an integer, or ``auto``).

    ``auto`` takes ``auto_size`` (``l0models.auto_pack_size`` for the trials' device: the
    pack size at which fusing measurably beats one model at a time) but only when the sweep
    has enough members to give every parallel slot (a trial's share of the cluster) at
    least one full pack; otherwise packs would be smaller than measured, or leave slots
    idle, and 1 (no fusion) is the safe choice. WRN and Optuna sweeps never fuse.

    Args:
        spec: The sweep spec (JSON form).
        fused_available: Whether a fused engine is installed.
        n_members: Configurations still to run.
        slots: Trials the cluster runs at once.
        auto_size: The measured/ruled pack size for the device (1: fusion does not pay).
    """
    if spec["search"]["strategy"] == "optuna" or spec["model"]["arch"] not in FUSABLE_ARCHS:
        return 1
    fuse = spec.get("fuse", "auto")
    if fuse != "auto":
        return max(1, int(fuse))
    if not fused_available or auto_size <= 1 or n_members < auto_size * max(1, slots):
        return 1
    return auto_size


def plan_packs(members: Sequence[Member], k: int) -> list[Pack]:
    """Consecutive groups of at most ``k`` members (grid order keeps λ-neighbours together)."""
    if k < 1:
        raise ValueError(f"pack size must be >= 1, got {k}")
    return [list(members[i : i + k]) for i in range(0, len(members), k)]


def grid_param_space(packs: Sequence[Pack], resume_from: Mapping[int, str]) -> dict[str, Any]:
    """Ray Tune param space running each pack once.

    Args:
        packs: The packs to run.
        resume_from: pack index → checkpoint path of that pack's previous incarnation.
    """
    configs = [pack_config(p, resume_from=resume_from.get(i)) for i, p in enumerate(packs)]
    return {"pack": tune.grid_search(configs)}


def _contains(dist: optuna.distributions.BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _values_distribution(values: Sequence[Any]) -> optuna.distributions.BaseDistribution:
    return optuna.distributions.CategoricalDistribution(list(values))


def optuna_distributions(
    spec: Mapping[str, Any],
) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna search space over λ, β and seed.

    Ranges become continuous (λ log-uniform, β uniform); lists and logspaces are the
    categorical choices they name; seeds are categorical.
    """
    lambdas = spec["lambdas"]
    betas = spec["betas"]
    space: dict[str, optuna.distributions.BaseDistribution] = {}
    if isinstance(lambdas, dict) and "min" in lambdas:
        space["lam"] = optuna.distributions.FloatDistribution(
            float(lambdas["min"]), float(lambdas["max"]), log=True
        )
    elif isinstance(lambdas, dict) and "logspace" in lambdas:
        lo, hi, num = lambdas["logspace"]
        # The same values SweepSpec's LogSpace expands to.
        space["lam"] = _values_distribution([float(x) for x in np.logspace(lo, hi, int(num))])
    else:
        space["lam"] = _values_distribution([float(v) for v in lambdas])
    if isinstance(betas, dict):
        space["beta"] = optuna.distributions.FloatDistribution(
            float(betas["min"]), float(betas["max"])
        )
    else:
        space["beta"] = _values_distribution([float(v) for v in betas])
    space["seed"] = _values_distribution([int(s) for s in spec["seeds"]])
    return space


def optuna_searcher(
    spec: Mapping[str, Any],
    *,
    completed: Sequence[tuple[Member, Mapping[str, float]]] = (),
) -> OptunaSearch:
    """Ray Tune's ``OptunaSearch`` on the three objectives, warm-started with ``completed``.

    Completed trials (after a runner restart) are added to the study as finished trials so
    the sampler continues from them instead of asking for those points again. They are added
    through Optuna's own storage (``study.add_trial``): Ray's ``evaluated_rewards`` only
    takes single-objective values.
    """
    search = spec["search"]
    seed = int(search.get("seed", 0))
    sampler: optuna.samplers.BaseSampler
    if search.get("sampler", "tpe") == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
    space = optuna_distributions(spec)
    storage = optuna.storages.InMemoryStorage()
    study_name = "l0sweep"
    directions: list[Literal["minimize", "maximize"]] = [
        "maximize" if mode == "max" else "minimize" for _, mode in OBJECTIVES
    ]
    study = optuna.create_study(storage=storage, study_name=study_name, directions=directions)
    for member, metrics in completed:
        params = {"lam": member.lam, "beta": member.beta, "seed": member.seed}
        if not all(_contains(space[name], params[name]) for name in space):
            continue  # a point outside the space cannot inform the sampler
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=space,
                values=[float(metrics[name]) for name, _ in OBJECTIVES],
            )
        )
    return OptunaSearch(
        space=space,
        metric=[name for name, _ in OBJECTIVES],
        mode=[mode for _, mode in OBJECTIVES],
        sampler=sampler,
        storage=storage,
        study_name=study_name,
    )
