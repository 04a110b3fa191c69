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
from typing import Any

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from l0models import ModelConfig, is_fusable
from service.spec import LogSpace, Range, SweepSpec
from service.spec import OptunaSearch as OptunaSearchSpec
from service.vocabulary import DEFAULT_OBJECTIVES, Direction
from workers.tune.protocol import Member, pack_config

__all__ = [
    "OBJECTIVES",
    "Pack",
    "grid_param_space",
    "optuna_distributions",
    "optuna_searcher",
    "plan_packs",
    "resolve_pack_size",
]

# Optuna's multi-objective targets: the default Pareto objectives (service.vocabulary).
OBJECTIVES: tuple[tuple[str, str], ...] = tuple((o.value, o.mode) for o in DEFAULT_OBJECTIVES)

Pack = list[Member]


def resolve_pack_size(
    spec: SweepSpec,
    *,
    config: ModelConfig,
    n_members: int = 0,
    slots: int = 1,
    auto_size: int = 1,
) -> int:
    """K for a grid/random sweep from the spec's ``fuse`` (an integer, or ``auto``).

    ``auto`` takes ``auto_size`` (``l0models.auto_pack_size`` for the trials' device: the
    pack size at which fusing measurably beats one model at a time) but only when the sweep
    has enough members to give every parallel slot (a trial's share of the cluster) at
    least one full pack; otherwise packs would be smaller than measured, or leave slots
    idle, and 1 (no fusion) is the safe choice. Architectures ``l0models`` cannot fuse
    (WRN) and Optuna sweeps never fuse.

    Args:
        spec: The sweep spec.
        config: The spec's ``l0models`` architecture config (``spec_adapter.arch_config``).
        n_members: Configurations still to run.
        slots: Trials the cluster runs at once.
        auto_size: The measured/ruled pack size for the device (1: fusion does not pay).
    """
    if isinstance(spec.search, OptunaSearchSpec) or not is_fusable(config):
        return 1
    if spec.fuse != "auto":
        return max(1, spec.fuse)
    if auto_size <= 1 or n_members < auto_size * max(1, slots):
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


def optuna_distributions(spec: SweepSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna search space over λ, β and seed.

    Ranges become continuous (λ log-uniform, β uniform); lists and logspaces are the
    categorical choices they name; seeds are categorical.
    """
    space: dict[str, optuna.distributions.BaseDistribution] = {}
    lambdas, betas = spec.lambdas, spec.betas
    if isinstance(lambdas, Range):
        space["lam"] = optuna.distributions.FloatDistribution(lambdas.min, lambdas.max, log=True)
    elif isinstance(lambdas, LogSpace):
        space["lam"] = _values_distribution(lambdas.values())
    else:
        space["lam"] = _values_distribution([float(v) for v in lambdas])
    if isinstance(betas, Range):
        space["beta"] = optuna.distributions.FloatDistribution(betas.min, betas.max)
    else:
        space["beta"] = _values_distribution([float(v) for v in betas])
    space["seed"] = _values_distribution(list(spec.seeds))
    return space


def optuna_searcher(
    spec: SweepSpec,
    *,
    completed: Sequence[tuple[Member, Mapping[str, float]]] = (),
) -> OptunaSearch:
    """Ray Tune's ``OptunaSearch`` on the three objectives, warm-started with ``completed``.

    Completed trials (after a runner restart) are added to the study as finished trials so
    the sampler continues from them instead of asking for those points again. They are added
    through Optuna's own storage (``study.add_trial``): Ray's ``evaluated_rewards`` only
    takes single-objective values.
    """
    search = spec.search
    if not isinstance(search, OptunaSearchSpec):
        raise ValueError(f"optuna_searcher needs search.strategy 'optuna', got {search.strategy!r}")
    seed = search.seed
    sampler: optuna.samplers.BaseSampler
    if search.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
    space = optuna_distributions(spec)
    storage = optuna.storages.InMemoryStorage()
    study_name = "l0sweep"
    directions: list[Direction] = [o.direction for o in DEFAULT_OBJECTIVES]
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
