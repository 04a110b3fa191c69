"""The one vocabulary of l0sweep: statuses, objectives, architectures and datasets.

Defined here once (DESIGN.md §4-5) and imported everywhere else: the spec, the ORM models
and their CHECK constraints, the repository, the API schemas and the workers. Every name is
a :class:`enum.StrEnum`, so a member *is* its string (``TrialStatus.COMPLETED ==
"completed"``, JSON ``"completed"``) and plain strings from the database or a request
compare equal to it.

Workers import from here, e.g. Ray Tune's ``metric``/``mode`` lists of the default front::

    from service.vocabulary import DEFAULT_OBJECTIVES
    metric = [o.value for o in DEFAULT_OBJECTIVES]  # ["accuracy", "sparsity", "flops"]
    mode = [o.mode for o in DEFAULT_OBJECTIVES]  # ["max", "max", "min"]
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = [
    "ARCH_DATASETS",
    "DEFAULT_OBJECTIVES",
    "FINISHED_SWEEP_STATUSES",
    "FINISHED_TRIAL_STATUSES",
    "MODEL_FORMAT_SUFFIXES",
    "OBJECTIVE_DIRECTIONS",
    "OPEN_TRIAL_STATUSES",
    "RESULT_TRIAL_STATUSES",
    "Architecture",
    "Dataset",
    "Direction",
    "ModelFormat",
    "Objective",
    "SweepStatus",
    "TrialStatus",
]

#: How an objective is optimised, in the words of the REST API and Optuna.
Direction = Literal["maximize", "minimize"]


class _Vocabulary(StrEnum):
    """A StrEnum that validates, documents and prints as the string Literal it replaced.

    Pydantic checks it as a Literal of the values and the repr is the value's, so request
    validation errors and the OpenAPI schema read exactly as they did with plain Literals.
    """

    def __repr__(self) -> str:
        return repr(self.value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.literal_schema([member.value for member in cls]),
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


class SweepStatus(_Vocabulary):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TrialStatus(_Vocabulary):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Early-stopped (issue 13): finished and usable, with its measures and model files as of
    # ``trials.stopped_epoch``; a success like COMPLETED (migration 0007).
    STOPPED = "stopped"


#: A sweep in one of these states takes no new trials and cannot be cancelled.
FINISHED_SWEEP_STATUSES = frozenset(
    {SweepStatus.COMPLETED, SweepStatus.FAILED, SweepStatus.CANCELLED}
)
#: Trials that have not finished yet (cancelling a sweep cancels these).
OPEN_TRIAL_STATUSES = frozenset({TrialStatus.PENDING, TrialStatus.RUNNING})
#: Trials that finished with measures and model files: the front, ``best`` and a sweep's
#: success are taken over these.
RESULT_TRIAL_STATUSES = frozenset({TrialStatus.COMPLETED, TrialStatus.STOPPED})
#: Trials that will not run again.
FINISHED_TRIAL_STATUSES = RESULT_TRIAL_STATUSES | {TrialStatus.FAILED, TrialStatus.CANCELLED}


class Objective(_Vocabulary):
    """A Pareto objective (DESIGN.md §4): a measure every completed trial reports."""

    ACCURACY = "accuracy"
    SPARSITY = "sparsity"
    FLOPS = "flops"
    PARAMS = "params"

    @property
    def direction(self) -> Direction:
        """``"maximize"`` or ``"minimize"`` (the REST API's and Optuna's words)."""
        return OBJECTIVE_DIRECTIONS[self]

    @property
    def mode(self) -> Literal["max", "min"]:
        """``"max"`` or ``"min"`` (Ray Tune's ``mode``)."""
        return "max" if OBJECTIVE_DIRECTIONS[self] == "maximize" else "min"


#: Objective -> direction (DESIGN.md §4): accuracy and sparsity up, FLOPs and params down.
OBJECTIVE_DIRECTIONS: Mapping[Objective, Direction] = MappingProxyType(
    {
        Objective.ACCURACY: "maximize",
        Objective.SPARSITY: "maximize",
        Objective.FLOPS: "minimize",
        Objective.PARAMS: "minimize",
    }
)
#: The front's default objectives, and the targets of multi-objective (Optuna) search.
DEFAULT_OBJECTIVES = (Objective.ACCURACY, Objective.SPARSITY, Objective.FLOPS)


class Architecture(_Vocabulary):
    """``model.arch`` of a sweep spec."""

    MLP = "mlp"
    LENET5 = "lenet5"
    WRN = "wrn"


class Dataset(_Vocabulary):
    """``dataset`` of a sweep spec."""

    MNIST = "mnist"
    CIFAR10 = "cifar10"
    CIFAR100 = "cifar100"
    SYNTHETIC = "synthetic"


# Which datasets each architecture can train on: the MLP and LeNet-5 take 1x28x28 MNIST
# inputs, the WRN takes 3x32x32 CIFAR inputs. "synthetic" is MNIST-shaped (1x28x28), so it
# fits the MLP and LeNet-5 only: a WRN on it failed every trial (issue 10).
ARCH_DATASETS: Mapping[Architecture, frozenset[Dataset]] = MappingProxyType(
    {
        Architecture.MLP: frozenset({Dataset.MNIST, Dataset.SYNTHETIC}),
        Architecture.LENET5: frozenset({Dataset.MNIST, Dataset.SYNTHETIC}),
        Architecture.WRN: frozenset({Dataset.CIFAR10, Dataset.CIFAR100}),
    }
)


class ModelFormat(_Vocabulary):
    """A file format of a completed trial's compacted model (``GET /trials/{id}/model``)."""

    TORCHSCRIPT = "torchscript"  # torch.jit.load; the default download
    ONNX = "onnx"  # onnxruntime, TensorRT, mobile runtimes
    PT2 = "pt2"  # torch.export.load

    @property
    def suffix(self) -> str:
        """The file name suffix: ``.pt``, ``.onnx`` or ``.pt2``."""
        return MODEL_FORMAT_SUFFIXES[self]

    @classmethod
    def from_suffix(cls, suffix: str) -> ModelFormat | None:
        """The format a file name suffix stands for (``".onnx"`` -> ONNX), or None."""
        for fmt, known in MODEL_FORMAT_SUFFIXES.items():
            if suffix.lower() == known:
                return fmt
        return None


#: Format -> file name suffix of its download.
MODEL_FORMAT_SUFFIXES: Mapping[ModelFormat, str] = MappingProxyType(
    {ModelFormat.TORCHSCRIPT: ".pt", ModelFormat.ONNX: ".onnx", ModelFormat.PT2: ".pt2"}
)
