"""The sweep specification of DESIGN.md §5 and its expansion into trial points."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationInfo,
    field_validator,
)

from service.errors import SpecLimitError

__all__ = [
    "ARCH_DATASETS",
    "GridSearch",
    "LeNet5Model",
    "LogSpace",
    "MLPModel",
    "OptunaSearch",
    "RandomSearch",
    "Range",
    "Resources",
    "SweepSpec",
    "TrainingSpec",
    "TrialPoint",
    "WRNModel",
]

# Which datasets each architecture can train on: the MLP and LeNet-5 take 1x28x28 MNIST
# inputs, the WRN takes 3x32x32 CIFAR inputs; "synthetic" is generated in whatever shape the
# architecture needs, so it fits all three.
ARCH_DATASETS: dict[str, frozenset[str]] = {
    "mlp": frozenset({"mnist", "synthetic"}),
    "lenet5": frozenset({"mnist", "synthetic"}),
    "wrn": frozenset({"cifar10", "cifar100", "synthetic"}),
}

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrialPoint(NamedTuple):
    """One configuration of a sweep: L0 strength λ, gate temperature β and seed."""

    lam: float
    beta: float
    seed: int


# ---------------------------------------------------------------- model


class MLPModel(_Strict):
    arch: Literal["mlp"]
    hidden: list[Annotated[StrictInt, Field(ge=1, le=100_000)]] = Field(
        default=[300, 100], min_length=1, max_length=16
    )


class LeNet5Model(_Strict):
    arch: Literal["lenet5"]


class WRNModel(_Strict):
    arch: Literal["wrn"]
    depth: StrictInt = Field(default=28, ge=10, le=100)
    width: PositiveInt = Field(default=10, le=20)

    @field_validator("depth")
    @classmethod
    def _depth_is_6n_plus_4(cls, depth: int) -> int:
        if (depth - 4) % 6 != 0:
            raise ValueError("WRN depth must be 6n + 4 (e.g. 16, 22, 28)")
        return depth


ModelSpec = Annotated[MLPModel | LeNet5Model | WRNModel, Field(discriminator="arch")]


# ---------------------------------------------------------------- value grids


class LogSpace(_Strict):
    """``{"logspace": [lo_exp, hi_exp, num]}``: ``num`` values 10**lo … 10**hi."""

    logspace: tuple[
        Annotated[float, Field(ge=-30, le=30, allow_inf_nan=False)],
        Annotated[float, Field(ge=-30, le=30, allow_inf_nan=False)],
        Annotated[StrictInt, Field(ge=1, le=100_000)],
    ]

    @field_validator("logspace")
    @classmethod
    def _ordered(cls, v: tuple[float, float, int]) -> tuple[float, float, int]:
        if v[0] > v[1]:
            raise ValueError("logspace needs lo_exp <= hi_exp")
        return v

    def values(self) -> list[float]:
        lo, hi, num = self.logspace
        return [float(x) for x in np.logspace(lo, hi, num)]


class Range(_Strict):
    """``{"min": a, "max": b}``: a range to sample from (random and optuna strategies)."""

    min: PositiveFloat
    max: PositiveFloat

    @field_validator("max")
    @classmethod
    def _ordered(cls, v: float, info: ValidationInfo) -> float:
        lo = info.data.get("min")
        if lo is not None and v < lo:
            raise ValueError("range needs min <= max")
        return v


def _grid_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "logspace" if "logspace" in value else "range"
    if isinstance(value, LogSpace):
        return "logspace"
    if isinstance(value, Range):
        return "range"
    return "list"


ValueList = Annotated[list[PositiveFloat], Field(min_length=1, max_length=100_000)]
LambdaGrid = Annotated[
    Annotated[ValueList, Tag("list")]
    | Annotated[LogSpace, Tag("logspace")]
    | Annotated[Range, Tag("range")],
    Discriminator(_grid_kind),
]
BetaGrid = Annotated[
    Annotated[ValueList, Tag("list")] | Annotated[Range, Tag("range")],
    Discriminator(_grid_kind),
]


# ---------------------------------------------------------------- search, training, resources


class GridSearch(_Strict):
    strategy: Literal["grid"]


class RandomSearch(_Strict):
    strategy: Literal["random"]
    n_trials: PositiveInt
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1)


class OptunaSearch(_Strict):
    strategy: Literal["optuna"]
    n_trials: PositiveInt
    sampler: Literal["tpe", "nsga2"] = "tpe"
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1)


SearchSpec = Annotated[GridSearch | RandomSearch | OptunaSearch, Field(discriminator="strategy")]


class TrainingSpec(_Strict):
    epochs: PositiveInt = Field(default=200, le=10_000)
    batch_size: PositiveInt = Field(default=100, le=1_000_000)
    lr: PositiveFloat = 1e-3
    weight_decay: float = Field(default=5e-4, ge=0, allow_inf_nan=False)
    # None: the reference droprate of the architecture (DESIGN.md §3).
    droprate_init: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False)
    local_rep: bool = False
    optimizer: Literal["adam", "sgd"] = "adam"


class Resources(_Strict):
    cpus_per_trial: float = Field(default=1, gt=0, le=1024, allow_inf_nan=False)
    gpus_per_trial: float = Field(default=0, ge=0, le=64, allow_inf_nan=False)


# ---------------------------------------------------------------- the spec


class SweepSpec(_Strict):
    """A sweep as POSTed to ``/api/v1/sweeps`` (DESIGN.md §5).

    Field order matters: ``search`` is validated before ``lambdas``/``betas`` so their
    validators can tell whether ranges are allowed, and ``model`` before ``dataset``.
    """

    name: str | None = Field(default=None, min_length=1, max_length=200)
    model: ModelSpec
    dataset: Literal["mnist", "cifar10", "cifar100", "synthetic"]
    search: SearchSpec = Field(default_factory=lambda: GridSearch(strategy="grid"))
    lambdas: LambdaGrid
    betas: BetaGrid = Field(default_factory=lambda: [2 / 3])
    seeds: list[Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]] = Field(
        default_factory=lambda: [0], min_length=1, max_length=10_000
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    resources: Resources = Field(default_factory=Resources)
    fuse: Literal["auto"] | PositiveInt = "auto"
    max_concurrent_trials: PositiveInt | None = None

    @field_validator("dataset")
    @classmethod
    def _dataset_fits_arch(cls, dataset: str, info: ValidationInfo) -> str:
        model = info.data.get("model")
        if model is not None and dataset not in ARCH_DATASETS[model.arch]:
            allowed = ", ".join(sorted(ARCH_DATASETS[model.arch]))
            raise ValueError(f"dataset {dataset!r} does not fit arch {model.arch!r} ({allowed})")
        return dataset

    @field_validator("lambdas", "betas")
    @classmethod
    def _ranges_need_sampling(cls, value: Any, info: ValidationInfo) -> Any:
        search = info.data.get("search")
        if isinstance(value, Range) and isinstance(search, GridSearch):
            raise ValueError(
                f"{info.field_name} as a range needs search.strategy 'random' or 'optuna'"
            )
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError(f"{info.field_name} has duplicate values")
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds has duplicate values")
        return seeds

    # ------------------------------------------------------------ derived

    @property
    def display_name(self) -> str:
        return self.name or f"{self.dataset}-{self.model.arch}"

    @property
    def strategy(self) -> str:
        return self.search.strategy

    def _values(self, grid: Any) -> list[float]:
        if isinstance(grid, LogSpace):
            return grid.values()
        assert isinstance(grid, list)
        return [float(x) for x in grid]

    def grid_size(self) -> int:
        """Number of grid points λ × β × seed, computed without expanding."""
        n_lam = self.lambdas.logspace[2] if isinstance(self.lambdas, LogSpace) else None
        if n_lam is None:
            n_lam = len(self.lambdas) if isinstance(self.lambdas, list) else 1
        n_beta = len(self.betas) if isinstance(self.betas, list) else 1
        return n_lam * n_beta * len(self.seeds)

    @property
    def n_trials(self) -> int:
        """The number of trials this sweep will run."""
        if isinstance(self.search, GridSearch):
            return self.grid_size()
        return self.search.n_trials

    def check_limits(self, max_trials_per_sweep: int) -> None:
        """Raise :class:`SpecLimitError` when the sweep has more trials than allowed."""
        n = self.n_trials
        if n <= max_trials_per_sweep:
            return
        if isinstance(self.search, GridSearch):
            raise SpecLimitError(
                f"the grid lambdas x betas x seeds has {n} trials, over "
                f"max_trials_per_sweep={max_trials_per_sweep}",
                ("lambdas",),
            )
        raise SpecLimitError(
            f"search.n_trials={n} is over max_trials_per_sweep={max_trials_per_sweep}",
            ("search", "n_trials"),
        )

    def expand_grid(self) -> list[TrialPoint]:
        """The grid λ × β × seed in a stable order (λ slowest, seed fastest)."""
        if isinstance(self.lambdas, Range) or isinstance(self.betas, Range):
            raise ValueError("ranges cannot be expanded into a grid")
        return [
            TrialPoint(lam, beta, seed)
            for lam, beta, seed in itertools.product(
                self._values(self.lambdas), self._values(self.betas), self.seeds
            )
        ]

    def initial_trials(self) -> list[TrialPoint]:
        """The trials stored when the sweep is created.

        ``grid``: the whole grid. ``random``: ``n_trials`` points sampled deterministically
        (seeded by ``search.seed`` and the spec itself), λ log-uniform over a range, β
        uniform over a range, lists sampled uniformly, seeds cycled. ``optuna``: none — the
        runner adds them as the sampler asks.
        """
        if isinstance(self.search, GridSearch):
            return self.expand_grid()
        if isinstance(self.search, OptunaSearch):
            return []
        rng = np.random.default_rng([self.search.seed, int(self.fingerprint()[:15], 16)])
        points = []
        for i in range(self.search.n_trials):
            lam = self._sample(rng, self.lambdas, log=True)
            beta = self._sample(rng, self.betas, log=False)
            points.append(TrialPoint(lam, beta, self.seeds[i % len(self.seeds)]))
        return points

    def _sample(self, rng: np.random.Generator, grid: Any, *, log: bool) -> float:
        if isinstance(grid, Range):
            if log:
                return float(math.exp(rng.uniform(math.log(grid.min), math.log(grid.max))))
            return float(rng.uniform(grid.min, grid.max))
        values = self._values(grid)
        return float(values[int(rng.integers(len(values)))])

    def canonical_json(self) -> str:
        """The spec as canonical JSON (sorted keys), for hashing and storage."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        """sha256 hex digest of :meth:`canonical_json`."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()
