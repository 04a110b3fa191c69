"""``train_fused``: K configurations (λ, β, seed) of one architecture trained as one model.

Each member is initialised exactly as ``train_model`` initialises it for its seed, draws its
data order from its own generator (seed) and its gate noise from the counter-based stream of
its seed (``l0models.noise``, the single trainer's), so fused members reproduce
their single runs up to float reordering (batched matmul, grouped convolution). The loss is
the sum of member losses, so each member's gradient is its own; Adam (or SGD) is
elementwise, so members stay independent. After training every member is copied into its
own single-model instance (``L0MLP`` / ``L0LeNet5``) and measured by the ordinary
``measure()``, exactly as a single trial.

Early stopping (``should_stop``): a member the caller stops leaves the stacked computation.
The pack's state is taken as a checkpoint would take it, the stopped members are cut out of
it (``FusedState.without``: each becomes its single-run ``TrainState``) and the survivors'
training is rebuilt from the cut state as a resume rebuilds it, so the pack gets faster and
every survivor continues its own data order and gate-noise stream.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from l0models.base import L0Model
from l0models.datasets import Dataset
from l0models.ema import ParamEMA, averaged
from l0models.fused.compiled import StepFn, compiled_train_step, member_losses, use_compile
from l0models.fused.models import FusedL0Model, is_fusable
from l0models.fused.noise import NOISE_MODES, GateNoise
from l0models.fused.state import FusedState
from l0models.measures import as_float_images, evaluate_accuracy, measure
from l0models.models import ModelConfig
from l0models.noise import CounterNoise
from l0models.optim import OptimizerSchedule
from l0models.precision import in_settings_precision
from l0models.training import (
    EpochRecord,
    TrainResult,
    TrainSettings,
    TrainState,
    augment_crop_flip,
    build_optimizer,
    check_resume_meta,
    data_generator,
    epoch_record,
    final_measures,
    init_model,
    is_eval_epoch,
    load_ema_state,
    to_cpu,
    trial_meta,
)

__all__ = ["FusedState", "MemberSpec", "StopFn", "fused_train_step", "train_fused"]

#: ``should_stop(k, history)``: whether member k (its index in ``members``) stops now.
StopFn = Callable[[int, Sequence[EpochRecord]], bool]


@dataclass(frozen=True)
class MemberSpec:
    """One configuration of a pack: L0 strength λ (per weight), gate temperature β, seed;
    ``weight_decay`` and ``lambda_scales`` override the shared settings' for this member
    (None: the settings' own), so weight-decay arms and L0-sep scales can share a pack."""

    lam: float
    beta: float
    seed: int
    weight_decay: float | None = None
    lambda_scales: tuple[float, ...] | None = None

    def settings(self, shared: TrainSettings) -> TrainSettings:
        """The settings this member trains with: the ``train_model`` run it reproduces."""
        changes: dict[str, Any] = {}
        if self.weight_decay is not None:
            changes["weight_decay"] = float(self.weight_decay)
        if self.lambda_scales is not None:
            changes["lambda_scales"] = tuple(float(s) for s in self.lambda_scales)
        return dataclasses.replace(shared, **changes) if changes else shared

    def meta(self, shared: TrainSettings) -> dict[str, Any]:
        """The ``TrainState.meta`` of this member's single run."""
        return trial_meta(self.lam, self.beta, self.seed, self.settings(shared))


def fused_train_step(
    fused: FusedL0Model,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    noises: Sequence[Tensor],
) -> Tensor:
    """One step of every member on its batch: x (K, B, ...), y (K, B), one noise tensor per
    gated layer. The loss is the sum of the members' objectives, so each member gets its own
    gradient. Returns each member's objective (K,), detached."""
    member_loss = member_losses(fused, x, y, noises)  # (K,)
    optimizer.zero_grad(set_to_none=True)
    member_loss.sum().backward()
    optimizer.step()
    fused.clamp_log_alpha_()
    return member_loss.detach()


@torch.no_grad()
def _fused_accuracy(fused: FusedL0Model, x: Tensor, y: Tensor, device: torch.device) -> Tensor:
    """Test-time accuracy of every member on (x, y), shape (K,)."""
    k = fused.members
    per_example = max(1, x[0].numel())
    chunk = max(50, min(1000, (1 << 25) // (k * per_example)))
    correct = torch.zeros(k, dtype=torch.long, device=device)
    for i in range(0, x.shape[0], chunk):
        xb = as_float_images(x[i : i + chunk].to(device))
        yb = y[i : i + chunk].to(device)
        correct += (fused.forward_shared(xb).argmax(2) == yb).sum(1)
    return correct.double() / max(1, x.shape[0])


@dataclass
class _Pack:
    """The stacked training setup of the active members: row r is member ``active[r]``."""

    active: list[int]
    singles: list[L0Model]  # one single model per row, for records and results
    fused: FusedL0Model
    opt: OptimizerSchedule
    step: StepFn
    ema: ParamEMA | None
    noise: CounterNoise


def _build_pack(
    config: ModelConfig,
    members: Sequence[MemberSpec],
    active: list[int],
    state: FusedState | None,
    *,
    settings: TrainSettings,
    data: Dataset,
    device: torch.device,
    noise: str,
    compile: bool | None,
) -> _Pack:
    """The stacked model, optimiser, EMA and gate noise of the ``active`` members, continued
    from ``state`` (whose stacked rows are exactly those members) when given."""
    singles = [
        init_model(
            config,
            lam=members[k].lam,
            beta=members[k].beta,
            seed=members[k].seed,
            settings=members[k].settings(settings),
            n_train=data.n_train,
        ).to(device)
        for k in active
    ]
    singles[0].check_input(data.x_train[:1].to(device))
    fused = FusedL0Model.from_models(singles).to(device)
    if [n for n, _ in fused.named_parameters()] != [n for n, _ in singles[0].named_parameters()]:
        raise RuntimeError("fused and single parameter names differ")  # a layout bug
    # The fused (single-kernel) Adam: same update, far fewer passes over K× the weights.
    opt = build_optimizer(fused.parameters(), settings, fused_adam=True)
    step: StepFn = functools.partial(fused_train_step, fused, opt.optimizer)
    if use_compile(compile, device):
        step = compiled_train_step(fused, opt.optimizer, device)
    # Elementwise on the stacked (K, ...) tensors: each member's own average.
    ema = None if settings.ema is None else ParamEMA(fused.named_parameters(), settings.ema)
    # Every member's key and stream word as in the whole pack; the active rows draw theirs.
    every = GateNoise(noise, [m.seed for m in members], device, fused.noise_shapes, batch_size=1)
    gate_noise = CounterNoise(
        [every.keys[k] for k in active],
        device,
        fused.noise_shapes,
        batch_size=settings.batch_size,
        streams=[every.streams[k] for k in active],
    )
    if state is not None:
        load_ema_state(ema, state.ema_state)
        fused.load_state_dict(state.model_state)
        # A copy: torch's load_state_dict keeps CPU tensors as they are, and the optimiser
        # updates its moments in place, which must not change the caller's state.
        opt.load_state_dicts(to_cpu(state.optimizer_state), state.scheduler_state)
        gate_noise.step = state.noise_step
    return _Pack(list(active), singles, fused, opt, step, ema, gate_noise)


def _train_epoch(
    pack: _Pack,
    data_gens: Sequence[torch.Generator],
    epoch: int,
    *,
    settings: TrainSettings,
    data: Dataset,
    device: torch.device,
) -> list[EpochRecord]:
    """One epoch of every row (``data_gens``: the rows' generators); their records."""
    t0 = time.perf_counter()
    fused, ema, n, bs = pack.fused, pack.ema, data.n_train, settings.batch_size
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    fused.train()
    orders = torch.stack([torch.randperm(n, generator=g) for g in data_gens]).to(device)
    loss_sum = torch.zeros(len(pack.active), device=device)
    for i in range(0, n, bs):
        idx = orders[:, i : i + bs]  # (K, B)
        b = idx.shape[1]
        xb = as_float_images(x_train[idx])  # (K, B, C, H, W)
        if data.augment:
            xb = torch.stack([augment_crop_flip(xb[k], g) for k, g in enumerate(data_gens)])
        noises = pack.noise.next(b)
        loss_sum += pack.step(xb, y_train[idx], noises) * b
        if ema is not None:
            ema.update()
    pack.opt.end_epoch()
    fused.eval()
    raw: list[float | None] = [None] * len(pack.active)
    evaluate = is_eval_epoch(settings, epoch)
    if evaluate:
        raw = list(_fused_accuracy(fused, data.x_test, data.y_test, device).tolist())
    losses = (loss_sum / n).tolist()
    seconds = time.perf_counter() - t0
    records = []
    with averaged(ema):
        accuracy = raw
        if evaluate and ema is not None:
            accuracy = list(_fused_accuracy(fused, data.x_test, data.y_test, device).tolist())
        for row, single in enumerate(pack.singles):
            fused.copy_member_to_(row, single)
            records.append(
                epoch_record(
                    single,
                    epoch=epoch,
                    loss=float(losses[row]),
                    accuracy=accuracy[row],
                    seconds=seconds,
                    accuracy_raw=raw[row],
                )
            )
    return records


def _row_result(pack: _Pack, row: int, history: list[EpochRecord], data: Dataset) -> TrainResult:
    """The stacked row's member as its own trained single model, measured as train_model."""
    single, fused, ema = pack.singles[row], pack.fused, pack.ema
    fused.copy_member_to_(row, single)
    single.eval()
    raw_accuracy = None
    if ema is not None:  # as train_model's final_measures: raw accuracy, then the average
        raw_accuracy = evaluate_accuracy(single, data.x_test, data.y_test)
        with ema.swapped():
            fused.copy_member_to_(row, single)
    measures = measure(single, data)
    if raw_accuracy is None:
        raw_accuracy = measures.accuracy
    measures = dataclasses.replace(measures, accuracy_raw=raw_accuracy)
    return TrainResult(model=single, history=history, measures=measures)


def _stopped_result(
    config: ModelConfig,
    member: MemberSpec,
    state: TrainState,
    *,
    settings: TrainSettings,
    data: Dataset,
    device: torch.device,
) -> TrainResult:
    """A member stopped early, from its state at the stop: what ``train_model`` returns."""
    settings = member.settings(settings)
    model = init_model(
        config,
        lam=member.lam,
        beta=member.beta,
        seed=member.seed,
        settings=settings,
        n_train=data.n_train,
    ).to(device)
    model.load_state_dict(state.model_state)
    ema = None if settings.ema is None else ParamEMA(model.named_parameters(), settings.ema)
    load_ema_state(ema, state.ema_state)
    model.eval()
    measures = final_measures(model, data, ema)
    return TrainResult(model, list(state.history), measures, stopped_epoch=state.epoch)


def _check_resume(resume: FusedState, metas: list[dict[str, Any]], noise: str) -> None:
    if len(resume.members) != len(metas) or resume.noise != noise:
        raise ValueError(
            f"resume state belongs to members {resume.members} ({resume.noise} noise), "
            f"not to {metas} ({noise} noise)"
        )
    for saved, meta in zip(resume.members, metas, strict=True):
        check_resume_meta(saved, meta)
    rows = resume.active_members()
    if sorted([*rows, *resume.stopped]) != list(range(len(metas))):
        raise ValueError(f"resume state's rows {rows} and stopped {sorted(resume.stopped)} "
                         f"do not cover its {len(metas)} members once each")  # fmt: skip


@in_settings_precision
def train_fused(
    config: ModelConfig,
    members: Sequence[MemberSpec],
    *,
    settings: TrainSettings,
    data: Dataset,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    on_state: Callable[[FusedState], None] | None = None,
    resume: FusedState | None = None,
    noise: str = "member",
    compile: bool | None = None,
    should_stop: StopFn | None = None,
) -> list[TrainResult]:
    """Train the K ``members`` of architecture ``config`` as one batched model.

    Args:
        config: an ``MLPConfig`` or ``LeNet5Config`` (``is_fusable``).
        members: one ``MemberSpec(lam, beta, seed)`` per configuration (optionally with its
            own weight decay and λ scales).
        settings: shared training settings (epochs, batch, optimiser, noise mode, ...).
        data: the dataset; every member sees it in its own order.
        device: where to train.
        on_epoch: called as ``on_epoch(k, record)`` for every active (not stopped) member
            after each epoch.
        on_state: called once per epoch, after the ``on_epoch`` calls and the stop asks,
            with a ``FusedState`` that ``resume=`` continues exactly (and
            ``state.member_state(k)`` splits); it holds the members stopped so far.
        resume: a saved ``FusedState`` of the same members.
        noise: ``"member"`` (default): each member's own gate-noise stream, identical to
            ``train_model``'s for its seed; ``"pack"``: one key for the pack (the same cost
            since the noise is counter-based; not reproducible by a single run).
        compile: compile the training step (``l0models.fused.compiled``: CUDA graphs on a
            GPU); None: off (opt-in; see ``l0models.fused.compiled.use_compile``).
        should_stop: ``should_stop(k, history)``, asked for every active member k (its
            index in ``members``) after each epoch e < ``settings.epochs`` with its records
            so far (and on resume at 0 < epoch < ``settings.epochs`` for the resumed
            history, as ``train_model`` asks). True: member k stops at e and leaves the
            stacked computation (the others are re-packed); when every member has stopped
            the run returns at once.

    Returns:
        One ``TrainResult`` per member, in order: its trained single model (eval mode; the
        averaged parameters with ``settings.ema``), its history and its measures, computed
        exactly as ``train_model`` computes them (a stopped member's from its parameters at
        its stop epoch, with ``stopped_epoch`` set).
        ``EpochRecord.seconds`` is the wall time of the pack's epoch (shared by members).
    """
    if not is_fusable(config):
        raise ValueError(f"{type(config).__name__} cannot be fused; train it with train_model")
    if not members:
        raise ValueError("train_fused needs at least one member")
    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    members = [m if isinstance(m, MemberSpec) else MemberSpec(*m) for m in members]
    device = torch.device(device)
    build = functools.partial(
        _build_pack, config, members, settings=settings, data=data, device=device,
        noise=noise, compile=compile,
    )  # fmt: skip
    metas = [m.meta(settings) for m in members]
    data_gens = [data_generator(m.seed) for m in members]  # stopped members' stay still
    histories: list[list[EpochRecord]] = [[] for _ in members]
    state = resume
    if resume is not None:
        _check_resume(resume, metas, noise)
        for g, s in zip(data_gens, resume.data_rng_states, strict=True):
            g.set_state(s)
        histories = [list(h) for h in resume.histories]
        if should_stop is not None and 0 < resume.epoch < settings.epochs:
            asked = [k for k in resume.active_members() if should_stop(k, list(histories[k]))]
            state = resume.without(asked)
    epoch = 0 if state is None else state.epoch
    stopped = {} if state is None else dict(state.stopped)
    active = list(range(len(members))) if state is None else state.active_members()
    pack = build(active, state) if active else None
    while pack is not None and epoch < settings.epochs:
        epoch += 1
        rows = pack.active
        gens = [data_gens[k] for k in rows]
        records = _train_epoch(pack, gens, epoch, settings=settings, data=data, device=device)
        for k, record in zip(rows, records, strict=True):
            histories[k].append(record)
            if on_epoch is not None:
                on_epoch(k, record)
        stopping = []
        if should_stop is not None and epoch < settings.epochs:
            stopping = [k for k in rows if should_stop(k, list(histories[k]))]
        if on_state is None and not stopping:
            continue
        optimizer_state, scheduler_state = pack.opt.state_dicts()
        state = FusedState(
            epoch=epoch,
            model_state=to_cpu(pack.fused.state_dict()),
            optimizer_state=optimizer_state,
            scheduler_state=scheduler_state,
            data_rng_states=[g.get_state() for g in data_gens],
            noise_step=pack.noise.step,
            histories=[list(h) for h in histories],
            members=[dict(m) for m in metas],
            noise=noise,
            param_names=[name for name, _ in pack.fused.named_parameters()],
            ema_state=None if pack.ema is None else pack.ema.state_dict(),
            active=list(rows) if stopped else None,
            stopped=dict(stopped),
        )
        if stopping:  # re-pack the survivors from the state, as a resume would
            state = state.without(stopping)
            stopped = dict(state.stopped)
            active = state.active_members()
            pack = build(active, state) if active else None
        if on_state is not None:
            on_state(state)

    results: dict[int, TrainResult] = {}
    if pack is not None:
        for row, k in enumerate(pack.active):
            results[k] = _row_result(pack, row, histories[k], data)
    for k, member_state in stopped.items():
        results[k] = _stopped_result(
            config, members[k], member_state, settings=settings, data=data, device=device
        )
    return [results[k] for k in range(len(members))]
