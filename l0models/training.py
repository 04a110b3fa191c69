"""``train_model``: trains one L0 model on device-resident tensors, resumable, reproducible.

Randomness: the model is initialised from ``seed``; the data order and the gates' noise come
from two generators of their own seeded from ``seed``, and their states travel in
``TrainState``, so a resumed run continues exactly and the same seed gives the same result
on the CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from l0models.base import L0Model
from l0models.datasets import Dataset
from l0models.measures import Measures, as_float_images, evaluate_accuracy, measure
from l0models.models import ModelConfig, build_model

__all__ = [
    "EpochRecord",
    "TrainResult",
    "TrainSettings",
    "TrainState",
    "augment_crop_flip",
    "train_epoch",
    "train_model",
]

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs. ``optimizer="sgd"``: Nesterov momentum 0.9, lr × 0.2 at 30/60/80 %
    of the epochs (the WRN schedule). Weight decay enters through the penalty (½·wd·θ²)."""

    epochs: int
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 5e-4
    droprate_init: float | None = None
    optimizer: str = "adam"
    local_rep: bool = False
    eval_every: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs <= 0:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {self.batch_size!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.eval_every <= 0:
            raise ValueError(f"eval_every must be > 0, got {self.eval_every!r}")


@dataclass
class EpochRecord:
    """One history row. ``accuracy``: test accuracy with test-time gates, None on epochs
    skipped by ``eval_every`` (the last epoch is always evaluated)."""

    epoch: int  # 1-based
    loss: float  # mean training objective (cross-entropy + penalty) over the epoch
    accuracy: float | None
    expected_l0: float
    expected_flops: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainState:
    """Everything needed to continue a run exactly; picklable (``torch.save``), CPU tensors.

    ``as_dict()`` / ``from_dict()`` convert to and from a plain dict.
    """

    epoch: int  # epochs completed
    model_state: dict[str, Tensor]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any] | None
    data_rng_state: Tensor
    noise_rng_state: Tensor
    history: list[EpochRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # lam, beta, seed: checked on resume

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["history"] = [r.as_dict() for r in self.history]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        d = dict(d)
        d["history"] = [r if isinstance(r, EpochRecord) else EpochRecord(**r) for r in d["history"]]
        return cls(**d)


@dataclass
class TrainResult:
    model: L0Model
    history: list[EpochRecord]
    measures: Measures


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def augment_crop_flip(x: Tensor, generator: torch.Generator, *, pad: int = 4) -> Tensor:
    """Random crop with zero padding ``pad`` and horizontal flip, per example. (B, C, H, W)."""
    b, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def train_epoch(
    model: L0Model,
    optimizer: torch.optim.Optimizer,
    x_train: Tensor,
    y_train: Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    augment: bool = False,
) -> float:
    """One pass over device-resident tensors in a random order drawn from ``generator``:
    minimise cross-entropy + penalty, clamp log α after each step. Returns the mean loss."""
    model.train()
    n = x_train.shape[0]
    order = torch.randperm(n, generator=generator).to(x_train.device)
    loss_sum = torch.zeros((), device=x_train.device)
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        xb = as_float_images(x_train[idx])
        if augment:
            xb = augment_crop_flip(xb, generator)
        loss = F.cross_entropy(model(xb), y_train[idx]) + model.penalty()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.clamp_log_alpha_()
        loss_sum += loss.detach() * idx.numel()
    return float(loss_sum) / n


def _milestones(epochs: int) -> list[int]:
    return sorted({max(1, round(epochs * f)) for f in (0.3, 0.6, 0.8)})


def train_model(
    config: ModelConfig,
    *,
    lam: float,
    beta: float,
    seed: int,
    settings: TrainSettings,
    data: Dataset,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[EpochRecord, TrainState], None] | None = None,
    resume: TrainState | None = None,
) -> TrainResult:
    """Train an L0 model of ``config`` with L0 strength ``lam`` (per weight; divided by the
    training-set size inside) and gate temperature ``beta``.

    Calls ``on_epoch(record, state)`` after every epoch; pass a saved ``state`` back as
    ``resume=`` to continue where it stopped. Returns the trained model (eval mode), the
    history and the final measures (on ``data``'s test split).
    """
    device = torch.device(device)
    if settings.droprate_init is not None:
        config = dataclasses.replace(config, droprate_init=settings.droprate_init)
    meta = {"lam": float(lam), "beta": float(beta), "seed": int(seed)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(
            config,
            beta=beta,
            lam=lam,
            weight_decay=settings.weight_decay,
            n_train=data.n_train,
            local_rep=settings.local_rep,
        )
    model.to(device)
    model.check_input(data.x_train[:1].to(device))

    if settings.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        scheduler = None
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, nesterov=True)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=_milestones(settings.epochs), gamma=0.2
        )
    data_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    history: list[EpochRecord] = []
    start = 0
    if resume is not None:
        if resume.meta and resume.meta != meta:
            raise ValueError(f"resume state belongs to {resume.meta}, not to {meta}")
        model.load_state_dict(resume.model_state)
        optimizer.load_state_dict(resume.optimizer_state)
        if scheduler is not None and resume.scheduler_state is not None:
            scheduler.load_state_dict(resume.scheduler_state)
        data_gen.set_state(resume.data_rng_state)
        noise_gen.set_state(resume.noise_rng_state)
        history = list(resume.history)
        start = resume.epoch
    model.set_noise_generator(noise_gen)

    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    try:
        for epoch in range(start, settings.epochs):
            t0 = time.perf_counter()
            mean_loss = train_epoch(
                model, optimizer, x_train, y_train, batch_size=settings.batch_size,
                generator=data_gen, augment=data.augment,
            )  # fmt: skip
            if scheduler is not None:
                scheduler.step()
            last = epoch + 1 == settings.epochs
            accuracy = None
            if last or (epoch + 1) % settings.eval_every == 0:
                accuracy = evaluate_accuracy(model, data.x_test, data.y_test)
            record = EpochRecord(
                epoch=epoch + 1,
                loss=mean_loss,
                accuracy=accuracy,
                expected_l0=model.expected_l0(),
                expected_flops=model.expected_flops(),
                seconds=time.perf_counter() - t0,
            )
            history.append(record)
            if on_epoch is not None:
                state = TrainState(
                    epoch=epoch + 1,
                    model_state=_to_cpu(model.state_dict()),
                    optimizer_state=_to_cpu(optimizer.state_dict()),
                    scheduler_state=None if scheduler is None else _to_cpu(scheduler.state_dict()),
                    data_rng_state=data_gen.get_state(),
                    noise_rng_state=noise_gen.get_state().cpu(),
                    history=list(history),
                    meta=dict(meta),
                )
                on_epoch(record, state)
    finally:
        model.set_noise_generator(None)
    model.eval()
    return TrainResult(model=model, history=history, measures=measure(model, data))
