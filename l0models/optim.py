"""Optimiser and learning-rate schedule of a trial, built from ``TrainSettings``.

``build_optimizer`` → ``OptimizerSchedule``: Adam, or SGD with (Nesterov) momentum, and a
step schedule (lr × ``lr_gamma`` after each milestone epoch). Shared by ``train_model`` and
the fused trainer, so their optimiser states are the same (and resume the same way).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from l0models.training import TrainSettings

__all__ = [
    "LR_GAMMA",
    "OPTIMIZERS",
    "SGD_MOMENTUM",
    "OptimizerSchedule",
    "build_optimizer",
    "lr_milestones",
    "to_cpu",
]

OPTIMIZERS = ("adam", "sgd")
SGD_MOMENTUM = 0.9  # the WRN recipe: Nesterov momentum 0.9
LR_GAMMA = 0.2  # learning-rate factor at each milestone


def to_cpu(obj: Any) -> Any:
    """A detached CPU copy of a (nested) state: tensors in dicts, lists and tuples copied to
    the CPU, anything else deep-copied. What the checkpointed states hold."""
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def lr_milestones(epochs: int) -> list[int]:
    """SGD's default milestones when none are given: 30/60/80 % of the epochs."""
    return sorted({max(1, round(epochs * f)) for f in (0.3, 0.6, 0.8)})


@dataclass
class OptimizerSchedule:
    """An optimiser and its per-epoch learning-rate schedule (None: constant rate)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None

    def end_epoch(self) -> None:
        """Advance the schedule; call once after each epoch's steps."""
        if self.scheduler is not None:
            self.scheduler.step()

    def state_dicts(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """CPU copies of the optimiser's and the schedule's states, for a checkpoint."""
        scheduler = None if self.scheduler is None else to_cpu(self.scheduler.state_dict())
        return to_cpu(self.optimizer.state_dict()), scheduler

    def load_state_dicts(
        self, optimizer_state: dict[str, Any], scheduler_state: dict[str, Any] | None
    ) -> None:
        """Continue from ``state_dicts()`` of a saved run."""
        self.optimizer.load_state_dict(optimizer_state)
        if self.scheduler is not None and scheduler_state is not None:
            self.scheduler.load_state_dict(scheduler_state)


def build_optimizer(
    params: Iterable[nn.Parameter], settings: TrainSettings, *, fused_adam: bool = False
) -> OptimizerSchedule:
    """``settings.optimizer``: Adam, or SGD with ``momentum`` (Nesterov when ``nesterov``).

    Schedule: lr × ``lr_gamma`` after each epoch of ``lr_milestones``; when those are None,
    SGD steps at ``lr_milestones(epochs)`` (30/60/80 %) and Adam keeps a constant rate (what
    specs without milestones always meant). ``fused_adam``: torch's single-kernel Adam (the
    same update; pays when the parameters are K stacked models).
    """
    optimizer: torch.optim.Optimizer
    milestones = None if settings.lr_milestones is None else list(settings.lr_milestones)
    if settings.optimizer == "adam":
        fused = True if fused_adam else None
        optimizer = torch.optim.Adam(params, lr=settings.lr, fused=fused)
    else:
        optimizer = torch.optim.SGD(
            params, lr=settings.lr, momentum=settings.momentum, nesterov=settings.nesterov
        )
        if milestones is None:
            milestones = lr_milestones(settings.epochs)
    if not milestones:
        return OptimizerSchedule(optimizer)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=milestones, gamma=settings.lr_gamma
    )
    return OptimizerSchedule(optimizer, scheduler)
