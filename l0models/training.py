"""``train_model``: trains one L0 model on device-resident tensors, resumable, reproducible.

Randomness: the model is initialised from ``seed``; the data order comes from a generator
of its own seeded from ``seed``, whose state travels in ``TrainState``; the gates' noise is
counter-based (``l0models.noise``: a function of the seed, the step, the layer and the unit),
so ``TrainState`` keeps the step counter. A resumed run continues exactly and the same seed
gives the same result on the CPU.

The pieces every trainer shares (the fused one of ``l0models.fused`` too) are public here:
``init_model`` (a trial's initial model), ``data_generator`` / ``noise_stream`` (its two
random streams), ``build_optimizer`` (optimiser and learning-rate schedule from
``TrainSettings``, with resume and checkpoint state), ``is_eval_epoch`` and
``epoch_record`` (one history row), ``train_step`` and ``to_cpu``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from l0models.base import L0Model
from l0models.datasets import Dataset
from l0models.ema import ParamEMA, averaged
from l0models.measures import Measures, as_float_images, evaluate_accuracy, measure
from l0models.models import ModelConfig, build_model
from l0models.noise import CounterNoise
from l0models.optim import (
    LR_GAMMA,
    OPTIMIZERS,
    SGD_MOMENTUM,
    OptimizerSchedule,
    build_optimizer,
    lr_milestones,
    to_cpu,
)
from l0models.precision import PRECISIONS, in_settings_precision

__all__ = [
    "LR_GAMMA",
    "OPTIMIZERS",
    "SGD_MOMENTUM",
    "EpochRecord",
    "OptimizerSchedule",
    "TrainResult",
    "TrainSettings",
    "TrainState",
    "augment_crop_flip",
    "build_optimizer",
    "check_resume_meta",
    "data_generator",
    "epoch_record",
    "init_model",
    "is_eval_epoch",
    "lr_milestones",
    "noise_stream",
    "to_cpu",
    "train_epoch",
    "train_model",
    "train_step",
    "trial_meta",
]


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs. Weight decay enters through the penalty (½·wd·θ²), not the optimiser.

    ``droprate_init``: None = the architecture's defaults (MLP 0.2 input / 0.5 after,
    LeNet-5 0.5, WRN 0.3), a float for every gated layer, or one per gated layer.
    ``lambda_scales``: one multiplier per gated layer, λ_l = λ·scale_l (L0-sep); None = 1.
    ``optimizer="sgd"``: ``momentum`` (Nesterov when ``nesterov``). ``lr_milestones``: epochs
    after which lr × ``lr_gamma``; None = SGD at 30/60/80 % of the epochs, Adam constant.
    ``ema``: decay of the parameters' moving average that evaluation, measures and the
    returned model use (``l0models.ema``); None = the raw parameters.
    ``precision``: ``"fp32"`` or ``"tf32"`` CUDA matmuls and convolutions
    (``l0models.precision``).
    """

    epochs: int
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 5e-4
    droprate_init: float | tuple[float, ...] | None = None
    optimizer: str = "adam"
    local_rep: bool = False
    eval_every: int = 1
    lambda_scales: tuple[float, ...] | None = None
    momentum: float = SGD_MOMENTUM
    nesterov: bool = True
    lr_milestones: tuple[int, ...] | None = None
    lr_gamma: float = LR_GAMMA
    ema: float | None = None
    precision: str = "fp32"

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
        for name in ("droprate_init", "lambda_scales", "lr_milestones"):
            value = getattr(self, name)
            if isinstance(value, list):  # frozen and hashable: lists become tuples
                object.__setattr__(self, name, tuple(value))
        if self.lambda_scales is not None and not all(
            math.isfinite(s) and s > 0 for s in self.lambda_scales
        ):
            raise ValueError(f"lambda_scales must be positive, got {self.lambda_scales!r}")
        if not 0 <= self.momentum < 1 or (self.nesterov and self.momentum == 0):
            raise ValueError(
                f"momentum must be in [0, 1) (> 0 with nesterov), got {self.momentum!r}"
            )
        if self.lr_milestones is not None and any(m <= 0 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones must be positive epochs, got {self.lr_milestones}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma!r}")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise ValueError(f"ema must be None or a decay in [0, 1), got {self.ema!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass
class EpochRecord:
    """One history row. ``accuracy``: test accuracy with test-time gates, None on epochs
    skipped by ``eval_every`` (the last epoch is always evaluated). With an EMA, accuracy
    and the expectations are the averaged parameters' and ``accuracy_raw`` the raw ones'."""

    epoch: int  # 1-based
    loss: float  # mean training objective (cross-entropy + penalty) over the epoch
    accuracy: float | None
    expected_l0: float
    expected_flops: float
    seconds: float
    accuracy_raw: float | None = None

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
    noise_step: int  # gate-noise steps drawn (the counter of l0models.noise)
    history: list[EpochRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # trial_meta(): checked on resume
    ema_state: dict[str, Any] | None = None  # ParamEMA.state_dict() when settings.ema is set

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["history"] = [r.as_dict() for r in self.history]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        d = dict(d)
        check_noise_format(d, "noise_rng_state")
        d["history"] = [r if isinstance(r, EpochRecord) else EpochRecord(**r) for r in d["history"]]
        return cls(**d)


@dataclass
class TrainResult:
    """A trained run: its model (eval mode), history and final measures. ``stopped_epoch``:
    the epoch a ``should_stop`` decision ended it at; None = trained to ``settings.epochs``."""

    model: L0Model
    history: list[EpochRecord]
    measures: Measures
    stopped_epoch: int | None = None


# ---- the pieces every trainer shares ---------------------------------------------------------


def init_model(
    config: ModelConfig,
    *,
    lam: float,
    beta: float,
    seed: int,
    settings: TrainSettings,
    n_train: int,
) -> L0Model:
    """The model a trial (λ, β, seed) starts from: ``config`` (with ``settings.droprate_init``
    when set) initialised from ``seed``, leaving the global random state as it was."""
    if settings.droprate_init is not None:
        config = dataclasses.replace(config, droprate_init=settings.droprate_init)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(
            config,
            beta=beta,
            lam=lam,
            weight_decay=settings.weight_decay,
            n_train=n_train,
            local_rep=settings.local_rep,
            lambda_scales=settings.lambda_scales,
        )


def trial_meta(lam: float, beta: float, seed: int, settings: TrainSettings) -> dict[str, Any]:
    """What a saved state records of its trial, checked on resume (``check_resume_meta``)."""
    scales = settings.lambda_scales
    return {
        "lam": float(lam),
        "beta": float(beta),
        "seed": int(seed),
        "weight_decay": float(settings.weight_decay),
        "lambda_scales": None if scales is None else [float(s) for s in scales],
    }


def check_resume_meta(saved: dict[str, Any], meta: dict[str, Any]) -> None:
    """Raise ValueError when a saved state belongs to another trial; keys a state saved
    before they existed (weight_decay, lambda_scales) lacks are not compared."""
    if any(key in meta and saved[key] != meta[key] for key in saved):
        raise ValueError(f"resume state belongs to {saved}, not to {meta}")


def data_generator(seed: int) -> torch.Generator:
    """The CPU generator of a trial's data order (and augmentation)."""
    return torch.Generator().manual_seed(seed)


def noise_stream(
    seed: int, model: L0Model, device: torch.device, *, batch_size: int, step: int = 0
) -> CounterNoise:
    """A trial's gate noise on ``device``: the counter-based stream of ``seed`` for the gated
    layers of ``model``, starting at ``step`` (the fused trainer's member streams are these)."""
    layers = model.l0_layers()
    return CounterNoise(
        [seed],
        device,
        lambda batch: [layer.noise_shape(batch) for layer in layers],
        batch_size=batch_size,
        step=step,
        dtype=layers[0].log_alpha.dtype,
    )


def check_noise_format(state: dict[str, Any], old_key: str) -> None:
    """ValueError for a state saved with the generator-based gate noise (before issue 12):
    its noise stream cannot be continued by the counter-based one."""
    if old_key in state:
        raise ValueError(
            "this checkpoint holds torch.Generator gate-noise states (the format before "
            "counter-based noise): it cannot be resumed; restart the trial"
        )


def is_eval_epoch(settings: TrainSettings, epoch: int) -> bool:
    """Whether the test accuracy is measured after (1-based) ``epoch``: every
    ``eval_every`` epochs and always after the last."""
    return epoch == settings.epochs or epoch % settings.eval_every == 0


def epoch_record(
    model: L0Model,
    *,
    epoch: int,
    loss: float,
    accuracy: float | None,
    seconds: float,
    accuracy_raw: float | None = None,
) -> EpochRecord:
    """The history row of ``model`` after ``epoch``, with its expected L0 and FLOPs now."""
    return EpochRecord(
        epoch=epoch,
        loss=loss,
        accuracy=accuracy,
        expected_l0=model.expected_l0(),
        expected_flops=model.expected_flops(),
        seconds=seconds,
        accuracy_raw=accuracy_raw,
    )


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
    ema: ParamEMA | None = None,
    noise: CounterNoise | None = None,
) -> float:
    """One pass over device-resident tensors in a random order drawn from ``generator``:
    minimise cross-entropy + penalty, clamp log α (and update ``ema``) after each step.
    ``noise``: the gates' noise stream (else drawn by the layers). Returns the mean loss."""
    model.train()
    layers = model.l0_layers()
    n = x_train.shape[0]
    order = torch.randperm(n, generator=generator).to(x_train.device)
    loss_sum = torch.zeros((), device=x_train.device)
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        xb = as_float_images(x_train[idx])
        if augment:
            xb = augment_crop_flip(xb, generator)
        if noise is not None:
            for layer, z in zip(layers, noise.next(idx.numel()), strict=True):
                layer.noise = z[0]
        loss_sum += train_step(model, optimizer, xb, y_train[idx]) * idx.numel()
        if ema is not None:
            ema.update()
    return float(loss_sum) / n


def train_step(model: L0Model, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> Tensor:
    """One step on the batch (x, y): minimise cross-entropy + penalty, then clamp log α.
    Returns the step's objective (detached)."""
    loss = F.cross_entropy(model(x), y) + model.penalty()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    model.clamp_log_alpha_()
    return loss.detach()


@in_settings_precision
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
    should_stop: Callable[[Sequence[EpochRecord]], bool] | None = None,
) -> TrainResult:
    """Train an L0 model of ``config`` with L0 strength ``lam`` (per weight; divided by the
    training-set size inside) and gate temperature ``beta``.

    Calls ``on_epoch(record, state)`` after every epoch; pass a saved ``state`` back as
    ``resume=`` to continue where it stopped. Returns the trained model (eval mode), the
    history and the final measures (on ``data``'s test split). With ``settings.ema`` the
    returned model holds the averaged parameters, and the measures are theirs
    (``accuracy_raw``: the raw parameters' test accuracy).

    ``should_stop(history)`` (early stopping, the caller's decision): asked after each epoch
    e < ``settings.epochs`` (after ``on_epoch``) with this run's records so far; True ends
    training at e, measured as at the normal end, with ``stopped_epoch = e``. A run resumed
    at 0 < epoch < ``settings.epochs`` is asked first for its resumed history (a decision
    taken right before a crash; the caller answers a repeated ask the same way). The last
    epoch is never asked about.
    """
    device = torch.device(device)
    meta = trial_meta(lam, beta, seed, settings)
    model = init_model(
        config, lam=lam, beta=beta, seed=seed, settings=settings, n_train=data.n_train
    ).to(device)
    model.check_input(data.x_train[:1].to(device))

    opt = build_optimizer(model.parameters(), settings)
    ema = None if settings.ema is None else ParamEMA(model.named_parameters(), settings.ema)
    data_gen = data_generator(seed)
    noise = noise_stream(seed, model, device, batch_size=settings.batch_size)
    history: list[EpochRecord] = []
    start = 0
    if resume is not None:
        check_resume_meta(resume.meta, meta)
        load_ema_state(ema, resume.ema_state)
        model.load_state_dict(resume.model_state)
        # A copy: the optimiser updates its moments in place; the caller's state stays.
        opt.load_state_dicts(to_cpu(resume.optimizer_state), resume.scheduler_state)
        data_gen.set_state(resume.data_rng_state)
        noise.step = resume.noise_step
        history = list(resume.history)
        start = resume.epoch

    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    stopped = None
    if should_stop is not None and 0 < start < settings.epochs and should_stop(list(history)):
        stopped = start  # decided before the state was saved: train no further
    last = settings.epochs if stopped is None else start
    try:
        for epoch in range(start + 1, last + 1):
            t0 = time.perf_counter()
            mean_loss = train_epoch(
                model, opt.optimizer, x_train, y_train, batch_size=settings.batch_size,
                generator=data_gen, augment=data.augment, ema=ema, noise=noise,
            )  # fmt: skip
            opt.end_epoch()
            evaluate = is_eval_epoch(settings, epoch)
            raw = evaluate_accuracy(model, data.x_test, data.y_test) if evaluate else None
            with averaged(ema):
                accuracy = raw
                if evaluate and ema is not None:
                    accuracy = evaluate_accuracy(model, data.x_test, data.y_test)
                record = epoch_record(
                    model,
                    epoch=epoch,
                    loss=mean_loss,
                    accuracy=accuracy,
                    seconds=time.perf_counter() - t0,
                    accuracy_raw=raw,
                )
            history.append(record)
            if on_epoch is not None:
                optimizer_state, scheduler_state = opt.state_dicts()
                state = TrainState(
                    epoch=epoch,
                    model_state=to_cpu(model.state_dict()),
                    optimizer_state=optimizer_state,
                    scheduler_state=scheduler_state,
                    data_rng_state=data_gen.get_state(),
                    noise_step=noise.step,
                    history=list(history),
                    meta=dict(meta),
                    ema_state=None if ema is None else ema.state_dict(),
                )
                on_epoch(record, state)
            if should_stop is not None and epoch < settings.epochs and should_stop(list(history)):
                stopped = epoch
                break
    finally:
        for layer in model.l0_layers():  # no noise left pending after an interruption
            layer.noise = None
    model.eval()
    measures = final_measures(model, data, ema)
    return TrainResult(model=model, history=history, measures=measures, stopped_epoch=stopped)


def load_ema_state(ema: ParamEMA | None, state: dict[str, Any] | None) -> None:
    """Continue ``ema`` from a saved state; ValueError when the two disagree on having one."""
    if (ema is None) != (state is None):
        have = "no EMA" if state is None else "an EMA"
        raise ValueError(f"resume state has {have}, but settings.ema is {ema and ema.decay}")
    if ema is not None and state is not None:
        ema.load_state_dict(state)


def final_measures(model: L0Model, data: Dataset, ema: ParamEMA | None) -> Measures:
    """``measure(model)`` after training; with an ``ema`` (over ``model``'s parameters) the
    model keeps the averaged parameters from here on and ``accuracy_raw`` is the raw ones'."""
    if ema is None:
        measures = measure(model, data)
        return dataclasses.replace(measures, accuracy_raw=measures.accuracy)
    raw = evaluate_accuracy(model, data.x_test, data.y_test)
    ema.copy_to_params()
    return dataclasses.replace(measure(model, data), accuracy_raw=raw)
