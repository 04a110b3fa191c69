"""The sweep specification of DESIGN.md §5 and its expansion into trial points."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from pydantic import (
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationInfo,
    field_validator,
)

from service.errors import SpecLimitError
from service.sizes import DATASET_SHAPES, ModelSize, lenet5_size, mlp_size, wrn_size
from service.spec_blocks import (
    CONSTRAINT_KINDS,
    MAX_BETA,
    MAX_LAMBDA,
    Beta,
    BudgetConstraint,
    BudgetSearch,
    ConstraintKind,
    EarlyStopping,
    GridSearch,
    Lambda,
    LeNet5Model,
    MLPModel,
    ModelSpec,
    OptunaSearch,
    PositiveFloat,
    PositiveInt,
    RandomSearch,
    SearchSpec,
    StrictFloat,
    StrictModel,
    TrainingSpec,
    WRNModel,
    field_error,
    one_per_gated_layer,
)
from service.vocabulary import ARCH_DATASETS, Dataset

__all__ = [
    "ARCH_DATASETS",
    "CONSTRAINT_KINDS",
    "BudgetConstraint",
    "BudgetSearch",
    "ConstraintKind",
    "EarlyStopping",
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


class TrialPoint(NamedTuple):
    """One configuration of a sweep: L0 strength λ, gate temperature β, seed, and the weight
    decay when ``training.weight_decay`` is a list (a grid dimension); None: the spec's one
    value (``SweepSpec.trial_weight_decay`` resolves it)."""

    lam: float
    beta: float
    seed: int
    weight_decay: float | None = None


# ---------------------------------------------------------------- value grids


class LogSpace(StrictModel):
    """``{"logspace": [lo_exp, hi_exp, num]}``: ``num`` values 10**lo … 10**hi."""

    # Exponents of λ: at most 10**4 = MAX_LAMBDA.
    logspace: tuple[
        Annotated[StrictFloat, Field(ge=-30, le=4)],
        Annotated[StrictFloat, Field(ge=-30, le=4)],
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


class Range(StrictModel):
    """``{"min": a, "max": b}``: a range to sample from (random and optuna strategies) or,
    for λ, the interval the budget strategy searches."""

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


LambdaList = Annotated[list[Lambda], Field(min_length=1, max_length=100_000)]
BetaList = Annotated[list[Beta], Field(min_length=1, max_length=100_000)]
LambdaGrid = Annotated[
    Annotated[LambdaList, Tag("list")]
    | Annotated[LogSpace, Tag("logspace")]
    | Annotated[Range, Tag("range")],
    Discriminator(_grid_kind),
]
BetaGrid = Annotated[
    Annotated[BetaList, Tag("list")] | Annotated[Range, Tag("range")],
    Discriminator(_grid_kind),
]


# ---------------------------------------------------------------- resources


class Resources(StrictModel):
    cpus_per_trial: Annotated[StrictFloat, Field(gt=0, le=1024)] = 1
    gpus_per_trial: Annotated[StrictFloat, Field(ge=0, le=64)] = 0


# ---------------------------------------------------------------- the spec


class SweepSpec(StrictModel):
    """A sweep as POSTed to ``/api/v1/sweeps`` (DESIGN.md §5).

    Field order matters: ``search`` is validated before ``lambdas``/``betas`` so their
    validators can tell whether ranges are allowed, ``model`` before ``dataset`` and both
    before ``search`` (a budget's feasibility), ``training`` before ``early_stopping``.
    """

    name: str | None = Field(default=None, min_length=1, max_length=200)
    model: ModelSpec
    dataset: Dataset
    search: SearchSpec = Field(default_factory=lambda: GridSearch(strategy="grid"))
    lambdas: LambdaGrid
    betas: BetaGrid = Field(default_factory=lambda: [2 / 3])
    seeds: list[Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]] = Field(
        default_factory=lambda: [0], min_length=1, max_length=10_000
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    # Issue 13; None: every trial trains all its epochs (canonical_json leaves it out).
    early_stopping: EarlyStopping | None = None
    resources: Resources = Field(default_factory=Resources)
    fuse: Literal["auto"] | PositiveInt = "auto"
    max_concurrent_trials: PositiveInt | None = None

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str | None) -> str | None:
        # Shown in terminals and pages and stored as text: no control characters (NUL,
        # escape sequences), no invisible format characters, no lone surrogates.
        if name is not None and not name.isprintable():
            raise ValueError("name may only contain printable characters")
        return name

    @field_validator("dataset")
    @classmethod
    def _dataset_fits_arch(cls, dataset: Dataset, info: ValidationInfo) -> Dataset:
        model = info.data.get("model")
        if model is not None and dataset not in ARCH_DATASETS[model.arch]:
            allowed = ", ".join(sorted(ARCH_DATASETS[model.arch]))
            raise ValueError(f"dataset {dataset!r} does not fit arch {model.arch!r} ({allowed})")
        return dataset

    @field_validator("lambdas", "betas")
    @classmethod
    def _ranges_need_sampling(cls, value: Any, info: ValidationInfo) -> Any:
        search = info.data.get("search")
        lambdas = info.field_name == "lambdas"
        # Random and optuna sample ranges; the budget strategy searches λ over the interval
        # of lambdas (any form). A search that failed validation is not judged here.
        range_ok = isinstance(search, RandomSearch | OptunaSearch) or (
            lambdas and isinstance(search, BudgetSearch)
        )
        if isinstance(value, Range) and search is not None and not range_ok:
            budget = ", 'budget'" if lambdas else ""
            raise ValueError(
                f"{info.field_name} as a range needs search.strategy 'random'{budget} or 'optuna'"
            )
        limit = MAX_LAMBDA if info.field_name == "lambdas" else MAX_BETA
        if isinstance(value, Range) and value.max > limit:
            raise ValueError(f"{info.field_name} range max must be at most {limit:g}")
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError(f"{info.field_name} has duplicate values")
        return value

    @field_validator("training")
    @classmethod
    def _training_fits(cls, training: TrainingSpec, info: ValidationInfo) -> TrainingSpec:
        model, search = info.data.get("model"), info.data.get("search")
        if model is not None and isinstance(training.droprate_init, list):
            one_per_gated_layer(
                "training.droprate_init", training.droprate_init, model.gated_layers
            )
        adaptive = isinstance(search, OptunaSearch | BudgetSearch)
        if adaptive and len(training.weight_decays()) > 1:
            raise ValueError("training.weight_decay as a list needs search.strategy grid or random")
        return training

    @field_validator("search")
    @classmethod
    def _budget_is_feasible(cls, search: Any, info: ValidationInfo) -> Any:
        model, dataset = info.data.get("model"), info.data.get("dataset")
        if not isinstance(search, BudgetSearch) or model is None or dataset is None:
            return search
        constraint = search.constraint
        smallest = _model_size(model, dataset, smallest=True)
        what = f"the smallest {model.arch} on {dataset} (one unit kept per gated layer)"
        bound = constraint.value
        if constraint.kind == "max_flops" and bound < smallest.flops:
            message = f"max_flops={bound:g} is below the {smallest.flops:,} FLOPs of {what}"
        elif constraint.kind == "max_params" and bound < smallest.params:
            message = f"max_params={bound:g} is below the {smallest.params:,} parameters of {what}"
        elif constraint.kind == "min_sparsity":
            top = 1.0 - smallest.params / _model_size(model, dataset).params
            if bound <= top:
                return search
            message = f"min_sparsity={bound:g} is above the sparsity {top:.6g} of {what}"
        else:
            return search
        # Located as pydantic locates the budget block's own errors (the union's tag).
        raise field_error(("budget", "constraint", constraint.kind), message, bound)

    @field_validator("early_stopping")
    @classmethod
    def _rungs_fit_training(cls, stopping: Any, info: ValidationInfo) -> Any:
        training = info.data.get("training")
        if stopping is None or training is None:
            return stopping
        grace = stopping.grace_epochs
        if grace >= training.epochs:
            message = (
                f"grace_epochs={grace} must be below training.epochs={training.epochs} "
                "(no trial could be stopped)"
            )
            raise field_error(("grace_epochs",), message, grace)
        if grace % training.eval_every != 0:
            message = (
                f"grace_epochs={grace} must be a multiple of training.eval_every="
                f"{training.eval_every} (a rung needs a test accuracy)"
            )
            raise field_error(("grace_epochs",), message, grace)
        return stopping

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
        """Number of grid points λ × β × seed × weight decay, computed without expanding."""
        n_lam = self.lambdas.logspace[2] if isinstance(self.lambdas, LogSpace) else None
        if n_lam is None:
            n_lam = len(self.lambdas) if isinstance(self.lambdas, list) else 1
        n_beta = len(self.betas) if isinstance(self.betas, list) else 1
        return n_lam * n_beta * len(self.seeds) * len(self.training.weight_decays())

    @property
    def n_trials(self) -> int:
        """The number of trials this sweep will run."""
        if isinstance(self.search, GridSearch):
            return self.grid_size()
        return self.search.n_trials

    def dense_params(self) -> int:
        """Parameters of the dense architecture on this dataset (what a trial builds before
        any pruning; its ``params_dense``)."""
        return self.model_size().params

    def model_size(self, *, smallest: bool = False) -> ModelSize:
        """Parameters and FLOPs (DESIGN §4) of the dense model on this dataset (its
        ``params_dense``/``flops_dense``), or with ``smallest`` of the smallest model a trial
        can end with: one unit kept per gated layer."""
        return _model_size(self.model, self.dataset, smallest=smallest)

    def lambda_bounds(self) -> tuple[float, float]:
        """(min, max) of ``lambdas`` (a range, a log-space or a list): the λ interval the
        budget strategy searches."""
        if isinstance(self.lambdas, Range):
            return (float(self.lambdas.min), float(self.lambdas.max))
        values = self._values(self.lambdas)
        return (min(values), max(values))

    def check_limits(
        self, max_trials_per_sweep: int, *, max_params_per_trial: int | None = None
    ) -> None:
        """Raise :class:`SpecLimitError` when the sweep has more trials than allowed, or
        (given ``max_params_per_trial``) a model larger than that."""
        if max_params_per_trial is not None:
            params = self.dense_params()
            if params > max_params_per_trial:
                raise SpecLimitError(
                    f"the model has {params:,} parameters, over "
                    f"max_params_per_trial={max_params_per_trial:,}",
                    ("model",),
                )
        n = self.n_trials
        if n <= max_trials_per_sweep:
            return
        if isinstance(self.search, GridSearch):
            raise SpecLimitError(
                f"the grid lambdas x betas x seeds x weight_decay has {n} trials, over "
                f"max_trials_per_sweep={max_trials_per_sweep}",
                ("lambdas",),
            )
        raise SpecLimitError(
            f"search.n_trials={n} is over max_trials_per_sweep={max_trials_per_sweep}",
            ("search", "n_trials"),
        )

    def expand_grid(self) -> list[TrialPoint]:
        """The grid λ × β × seed (× weight decay when it is a list) in a stable order (λ
        slowest, weight decay fastest: a pack of consecutive points holds its arms)."""
        if isinstance(self.lambdas, Range) or isinstance(self.betas, Range):
            raise ValueError("ranges cannot be expanded into a grid")
        wds: list[float | None] = [None]
        if isinstance(self.training.weight_decay, list):
            wds = list(self.training.weight_decays())
        return [
            TrialPoint(lam, beta, seed, wd)
            for lam, beta, seed, wd in itertools.product(
                self._values(self.lambdas), self._values(self.betas), self.seeds, wds
            )
        ]

    def trial_weight_decay(self, point: TrialPoint) -> float:
        """The weight decay ``point`` trains with (its own, or the spec's one value)."""
        if point.weight_decay is not None:
            return float(point.weight_decay)
        return self.training.weight_decays()[0]

    def initial_trials(self) -> list[TrialPoint]:
        """The trials stored when the sweep is created.

        ``grid``: the whole grid. ``random``: ``n_trials`` points sampled deterministically
        (seeded by ``search.seed`` and the spec itself), λ log-uniform over a range, β
        uniform over a range, lists sampled uniformly, seeds cycled. ``optuna`` and
        ``budget``: none — the runner adds them as the search asks.
        """
        if isinstance(self.search, GridSearch):
            return self.expand_grid()
        if isinstance(self.search, OptunaSearch | BudgetSearch):
            return []
        rng = np.random.default_rng([self.search.seed, int(self.fingerprint()[:15], 16)])
        points = []
        for i in range(self.search.n_trials):
            lam = self._sample(rng, self.lambdas, log=True)
            beta = self._sample(rng, self.betas, log=False)
            wd = None
            if isinstance(self.training.weight_decay, list):  # uniform over the list
                wd = self._sample(rng, self.training.weight_decays(), log=False)
            points.append(TrialPoint(lam, beta, self.seeds[i % len(self.seeds)], wd))
        return points

    def _sample(self, rng: np.random.Generator, grid: Any, *, log: bool) -> float:
        if isinstance(grid, Range):
            if log:
                return float(math.exp(rng.uniform(math.log(grid.min), math.log(grid.max))))
            return float(rng.uniform(grid.min, grid.max))
        values = self._values(grid)
        return float(values[int(rng.integers(len(values)))])

    def canonical_json(self) -> str:
        """The spec as canonical JSON (sorted keys), for hashing and storage.

        Optional blocks added later are left out while unset, so a spec that does not use
        them keeps the fingerprint it had before they existed (idempotency keys of stored
        sweeps keep matching).
        """
        data = self.model_dump(mode="json")
        for name in _LATER_OPTIONAL_BLOCKS:
            if data.get(name) is None:
                data.pop(name, None)
        for (block, name), default in _LATER_DEFAULTED_FIELDS.items():
            if data.get(block, {}).get(name) == default:
                data[block].pop(name)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        """sha256 hex digest of :meth:`canonical_json`."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


#: Spec blocks added after sweeps were stored whose unset value is left out of the
#: fingerprint (see SweepSpec.canonical_json).
_LATER_OPTIONAL_BLOCKS = ("early_stopping",)
#: Fields added to a block later, left out of the fingerprint at their default value.
_LATER_DEFAULTED_FIELDS: dict[tuple[str, str], Any] = {("training", "eval_every"): 1}


def _model_size(model: ModelSpec, dataset: Dataset, *, smallest: bool = False) -> ModelSize:
    """service.sizes for a spec's model block on ``dataset``: dense, or one kept unit per
    gated layer (``smallest``)."""
    shape = DATASET_SHAPES[dataset]
    kept: Sequence[int] | None = [1] * model.gated_layers if smallest else None
    if isinstance(model, MLPModel):
        return mlp_size(shape.features, model.hidden, shape.classes, kept)
    if isinstance(model, LeNet5Model):
        return lenet5_size(shape.channels, shape.width, shape.classes, kept)
    return wrn_size(model.depth, model.width, shape.channels, shape.classes, kept, shape.width)
