"""The spec's building blocks: numeric bounds and strict number types (issue 10), the
``model`` block of each architecture with its per-layer λ scales, the ``training`` block
with the paper's recipe fields (issue 11), ``early_stopping``, the budget constraint and
the ``search`` strategies (issue 13). ``service.spec`` assembles them into the
``SweepSpec`` and re-exports them."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from service.vocabulary import Architecture

__all__ = [
    "CONSTRAINT_KINDS",
    "MAX_BETA",
    "MAX_LAMBDA",
    "MAX_LR",
    "MAX_WEIGHT_DECAY",
    "Beta",
    "BudgetConstraint",
    "BudgetSearch",
    "ConstraintKind",
    "Droprate",
    "EarlyStopping",
    "GridSearch",
    "Lambda",
    "LambdaScales",
    "LeNet5Model",
    "MLPModel",
    "ModelSpec",
    "OptunaSearch",
    "PositiveFloat",
    "PositiveInt",
    "RandomSearch",
    "SearchSpec",
    "StrictFloat",
    "StrictModel",
    "TrainingSpec",
    "WRNModel",
    "field_error",
    "one_per_gated_layer",
]

# Bounds that keep a run numerically sane; past them training only overflows or learns
# nothing, so such a spec is refused rather than accepted to fail (issue 10).
#: λ is per weight (the penalty is λ/N per kept weight, DESIGN §3): the paper's values are
#: 0.1 to 10 (L0-sep's largest scale, 100 × 0.1); 1e4 already prunes every unit.
MAX_LAMBDA = 1e4
#: The gates' temperature: 2/3 in the paper, 0.1-1 in practice; above 100 a gate's sample is
#: pure noise around 1/2.
MAX_BETA = 100.0
#: Adam's 1e-3 and SGD's 0.1 are the paper's; 10 diverges already.
MAX_LR = 10.0
#: 5e-4 in the paper; at 1 the L2 term outweighs any data loss.
MAX_WEIGHT_DECAY = 1.0

# Numbers are taken as JSON numbers only: "0.1" and true are refused, not coerced, and
# NaN, ±Infinity and 1e309 (which parses as infinity) are refused everywhere.
StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveFloat = Annotated[StrictFloat, Field(gt=0)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
Lambda = Annotated[PositiveFloat, Field(le=MAX_LAMBDA)]
Beta = Annotated[PositiveFloat, Field(le=MAX_BETA)]


class StrictModel(BaseModel):
    """Spec blocks refuse unknown fields and are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Per-layer values (issue 11): one λ multiplier or one initial drop rate per gated layer.
LambdaScale = Annotated[StrictFloat, Field(gt=0, le=1e4)]
LambdaScales = Annotated[list[LambdaScale], Field(min_length=1, max_length=1000)]
Droprate = Annotated[StrictFloat, Field(gt=0, lt=1)]


def field_error(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A validation error at ``loc`` below the field being validated.

    Raised from a field validator of the spec, it names the nested field (e.g.
    ``early_stopping.grace_epochs``) where a plain ValueError would name the block only.
    """
    error = PydanticCustomError("value_error", message.replace("{", "(").replace("}", ")"))
    return ValidationError.from_exception_data(
        "SweepSpec", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def one_per_gated_layer(field: str, values: list[Any] | None, n_layers: int) -> None:
    if values is not None and len(values) != n_layers:
        raise ValueError(f"{field} needs one value per gated layer ({n_layers}), got {len(values)}")


# ---------------------------------------------------------------- model


class MLPModel(StrictModel):
    arch: Literal[Architecture.MLP]
    hidden: list[Annotated[StrictInt, Field(ge=1, le=100_000)]] = Field(
        default=[300, 100], min_length=1, max_length=16
    )
    # L0-sep: λ_l = λ · lambda_scales[l], one per gated layer (None: 1 everywhere).
    lambda_scales: LambdaScales | None = None

    @property
    def gated_layers(self) -> int:
        """Gated layers: each linear layer's inputs (len(hidden) + 1)."""
        return len(self.hidden) + 1

    @field_validator("lambda_scales")
    @classmethod
    def _scales_per_layer(cls, scales: list[float] | None, info: ValidationInfo) -> Any:
        hidden = info.data.get("hidden")
        if hidden is not None:
            one_per_gated_layer("lambda_scales", scales, len(hidden) + 1)
        return scales


class LeNet5Model(StrictModel):
    arch: Literal[Architecture.LENET5]
    # conv1 maps, conv2 maps, fc1 inputs, fc2 inputs; L0-sep of the paper: [100, 5, 1, 100]
    # with λ = 0.1 (i.e. [10, 0.5, 0.1, 10]/N).
    lambda_scales: LambdaScales | None = None

    @property
    def gated_layers(self) -> int:
        return 4

    @field_validator("lambda_scales")
    @classmethod
    def _scales_per_layer(cls, scales: list[float] | None) -> Any:
        one_per_gated_layer("lambda_scales", scales, 4)
        return scales


class WRNModel(StrictModel):
    arch: Literal[Architecture.WRN]
    depth: StrictInt = Field(default=28, ge=10, le=100)
    width: PositiveInt = Field(default=10, le=20)
    # One per residual block (3·(depth − 4)/6 blocks, each gating its first conv).
    lambda_scales: LambdaScales | None = None

    @property
    def gated_layers(self) -> int:
        return 3 * ((self.depth - 4) // 6)

    @field_validator("depth")
    @classmethod
    def _depth_is_6n_plus_4(cls, depth: int) -> int:
        if (depth - 4) % 6 != 0:
            raise ValueError("WRN depth must be 6n + 4 (e.g. 16, 22, 28)")
        return depth

    @field_validator("lambda_scales")
    @classmethod
    def _scales_per_layer(cls, scales: list[float] | None, info: ValidationInfo) -> Any:
        depth = info.data.get("depth")
        if depth is not None:
            one_per_gated_layer("lambda_scales", scales, 3 * ((depth - 4) // 6))
        return scales


ModelSpec = Annotated[MLPModel | LeNet5Model | WRNModel, Field(discriminator="arch")]


# ---------------------------------------------------------------- training


WeightDecay = Annotated[StrictFloat, Field(ge=0, le=MAX_WEIGHT_DECAY)]


class TrainingSpec(StrictModel):
    """The ``training`` block; fields past ``optimizer`` are the paper's recipe (issue 11)."""

    epochs: PositiveInt = Field(default=200, le=10_000)
    # Test accuracy every this many epochs, and always after the last: each evaluation is a
    # pass over the test set. Epochs in between record accuracy null; early stopping's rungs
    # must fall on evaluated epochs (grace_epochs a multiple of it).
    eval_every: PositiveInt = Field(default=1, le=10_000)
    batch_size: PositiveInt = Field(default=100, le=1_000_000)
    lr: Annotated[PositiveFloat, Field(le=MAX_LR)] = 1e-3
    # A list is a grid dimension: λ × β × seed × weight decay.
    weight_decay: (
        WeightDecay | Annotated[list[WeightDecay], Field(min_length=1, max_length=100)]
    ) = 5e-4
    # None: the architecture's defaults (DESIGN.md §3: MLP 0.2 input / 0.5 after, LeNet-5 0.5,
    # WRN 0.3); a float: every gated layer; a list: one per gated layer.
    droprate_init: (
        Droprate | Annotated[list[Droprate], Field(min_length=1, max_length=1000)] | None
    ) = None
    local_rep: bool = False
    optimizer: Literal["adam", "sgd"] = "adam"
    # SGD only: momentum, Nesterov's (the WRN recipe: 0.9, Nesterov).
    momentum: Annotated[StrictFloat, Field(ge=0, lt=1)] = 0.9
    nesterov: StrictBool = True
    # Epochs after which lr × lr_gamma. None: SGD at 30/60/80 % of the epochs, Adam constant.
    lr_milestones: Annotated[list[PositiveInt], Field(max_length=100)] | None = None
    lr_gamma: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.2
    # Decay of the parameters' moving average used for evaluation, measures and the model
    # file (the authors': 0.999 MLP, 0.99 WRN); None: the raw parameters.
    ema: Annotated[StrictFloat, Field(ge=0, lt=1)] | None = None
    # Float32 CUDA matmuls and convolutions: "fp32" exact, "tf32" TensorFloat-32 (faster on
    # Ampere and later, ~1e-3 relative per product); recorded in each trial's metrics.
    precision: Literal["fp32", "tf32"] = "fp32"

    @field_validator("weight_decay")
    @classmethod
    def _unique_weight_decays(cls, value: Any) -> Any:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("weight_decay has duplicate values")
        return value

    @field_validator("lr_milestones")
    @classmethod
    def _increasing(cls, milestones: list[int] | None) -> Any:
        if milestones and any(b <= a for a, b in itertools.pairwise(milestones)):
            raise ValueError("lr_milestones must be strictly increasing epochs")
        return milestones

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> TrainingSpec:
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("training.nesterov needs momentum > 0 (or nesterov false)")
        return self

    def weight_decays(self) -> list[float]:
        """The weight decay values: one, or the grid dimension's."""
        wd = self.weight_decay
        return [float(v) for v in wd] if isinstance(wd, list) else [float(wd)]


# ---------------------------------------------------------------- early stopping (issue 13)


class EarlyStopping(StrictModel):
    """``early_stopping``: stop trials early at rungs ``grace_epochs · reduction_factor^k``
    (while below ``training.epochs``) when they fall behind the sweep's front ("pareto").

    A stopped trial keeps its measures and model files at its stop epoch (status
    ``stopped``). :class:`~service.spec.SweepSpec` checks the rungs fit the training.
    """

    kind: Literal["pareto"]
    grace_epochs: PositiveInt
    reduction_factor: Annotated[StrictFloat, Field(ge=2)]


# ---------------------------------------------------------------- budget constraint (issue 13)


ConstraintKind = Literal["max_flops", "max_params", "min_sparsity"]
#: The kinds of a budget constraint, in the order the spec documents them.
CONSTRAINT_KINDS: tuple[ConstraintKind, ...] = ("max_flops", "max_params", "min_sparsity")
_CONSTRAINED_MEASURE: dict[ConstraintKind, str] = {
    "max_flops": "flops",
    "max_params": "params",
    "min_sparsity": "sparsity",
}


class BudgetConstraint(StrictModel):
    """``search.constraint`` of the budget strategy: exactly one of ``{"max_flops": F}``,
    ``{"max_params": P}`` (inclusive upper bounds on the §4 measures) or
    ``{"min_sparsity": s}`` (an inclusive lower bound, 0 < s < 1).

    Dumped with its one key only. :class:`~service.spec.SweepSpec` refuses bounds no model
    of its architecture can meet.
    """

    max_flops: Annotated[StrictFloat, Field(gt=0)] | None = None
    max_params: Annotated[StrictFloat, Field(gt=0)] | None = None
    min_sparsity: Annotated[StrictFloat, Field(gt=0, lt=1)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetConstraint:
        given = [kind for kind in CONSTRAINT_KINDS if getattr(self, kind) is not None]
        if len(given) > 1:
            raise ValueError(
                f"search.constraint takes one kind of constraint, got {' and '.join(given)}: "
                "choose one of max_flops, max_params, min_sparsity"
            )
        if not given:
            raise ValueError("search.constraint needs one of max_flops, max_params, min_sparsity")
        return self

    @model_serializer(mode="wrap")
    def _only_the_kind(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    @property
    def kind(self) -> ConstraintKind:
        """``"max_flops"``, ``"max_params"`` or ``"min_sparsity"``."""
        return next(k for k in CONSTRAINT_KINDS if getattr(self, k) is not None)

    @property
    def value(self) -> float:
        """The bound: FLOPs, parameters, or the sparsity."""
        return float(getattr(self, self.kind))

    @property
    def measure(self) -> str:
        """The §4 measure it bounds: ``"flops"``, ``"params"`` or ``"sparsity"``."""
        return _CONSTRAINED_MEASURE[self.kind]

    @property
    def is_upper_bound(self) -> bool:
        """True for max_flops / max_params (measure ≤ value), False for min_sparsity (≥)."""
        return self.kind != "min_sparsity"

    def satisfied_by(self, measures: Mapping[str, Any]) -> bool:
        """Whether a trial's measures meet the bound (bounds inclusive); a missing or
        non-finite measure does not."""
        raw = measures.get(self.measure)
        if raw is None or isinstance(raw, bool):
            return False
        try:
            measured = float(raw)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(measured):
            return False
        return measured <= self.value if self.is_upper_bound else measured >= self.value


# ---------------------------------------------------------------- search strategies


class GridSearch(StrictModel):
    strategy: Literal["grid"]


class RandomSearch(StrictModel):
    strategy: Literal["random"]
    n_trials: PositiveInt
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1)


class OptunaSearch(StrictModel):
    strategy: Literal["optuna"]
    n_trials: PositiveInt
    sampler: Literal["tpe", "nsga2"] = "tpe"
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1)


class BudgetSearch(StrictModel):
    """The most accurate model meeting ``constraint`` in ``n_trials`` trials, λ searched
    over the interval of ``lambdas`` (issue 13); trials are added as the search asks."""

    strategy: Literal["budget"]
    constraint: BudgetConstraint
    n_trials: Annotated[StrictInt, Field(ge=3)]
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1)


SearchSpec = Annotated[
    GridSearch | RandomSearch | OptunaSearch | BudgetSearch, Field(discriminator="strategy")
]
