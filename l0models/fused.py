"""``train_fused``: K configurations (λ, β, seed) of one architecture trained as one model.

Each member is initialised exactly as ``train_model`` initialises it for its seed, draws its
data order from its own generator (seed) and its gate noise from its own generator
(seed + 1) in the same order and shapes as the single trainer, so fused members reproduce
their single runs up to float reordering (batched matmul, grouped convolution). The loss is
the sum of member losses, so each member's gradient is its own; Adam (or SGD) is
elementwise, so members stay independent. After training every member is copied into its
own single-model instance (``L0MLP`` / ``L0LeNet5``) and measured by the ordinary
``measure()``, exactly as a single trial.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from l0models.base import L0Model
from l0models.datasets import Dataset
from l0models.fused_layers import FusedL0Model
from l0models.gates import EPS
from l0models.lenet import LeNet5Config
from l0models.measures import as_float_images, measure
from l0models.mlp import MLPConfig
from l0models.models import ModelConfig, build_model
from l0models.training import (
    EpochRecord,
    TrainResult,
    TrainSettings,
    TrainState,
    _milestones,
    _to_cpu,
    augment_crop_flip,
)

__all__ = [
    "NOISE_MODES",
    "FusedState",
    "MemberSpec",
    "auto_pack_size",
    "is_fusable",
    "train_fused",
]

NOISE_MODES = ("member", "pack")
# Upper bound on the floats of pre-drawn gate noise held at once (CPU noise path).
_NOISE_CHUNK_FLOATS = 1 << 24


@dataclass(frozen=True)
class MemberSpec:
    """One configuration of a pack: L0 strength λ (per weight), gate temperature β, seed."""

    lam: float
    beta: float
    seed: int

    def meta(self) -> dict[str, Any]:
        # The same dict train_model stores in TrainState.meta.
        return {"lam": float(self.lam), "beta": float(self.beta), "seed": int(self.seed)}


@dataclass
class FusedState:
    """Everything needed to continue a fused run exactly (CPU tensors, picklable).

    ``model_state`` and ``optimizer_state`` hold stacked (K, ...) tensors;
    ``member_state(k)`` cuts out member k as an ordinary ``TrainState`` that
    ``train_model(resume=...)`` continues alone.
    """

    epoch: int  # epochs completed
    model_state: dict[str, Tensor]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any] | None
    data_rng_states: list[Tensor]
    noise_rng_states: list[Tensor]  # one per member ("member" noise) or one ("pack")
    histories: list[list[EpochRecord]]
    members: list[dict[str, Any]]  # MemberSpec.meta() of each member
    noise: str = "member"
    param_names: list[str] = field(default_factory=list)  # optimizer param order

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["histories"] = [[r.as_dict() for r in h] for h in self.histories]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusedState:
        d = dict(d)
        d["histories"] = [
            [r if isinstance(r, EpochRecord) else EpochRecord(**r) for r in h]
            for h in d["histories"]
        ]
        return cls(**d)

    def member_state(self, k: int) -> TrainState:
        """Member ``k`` as a single-trainer ``TrainState`` (needs ``noise="member"``)."""
        if self.noise != "member":
            raise ValueError("only runs with per-member noise can be split into single states")
        names = set(self.param_names)
        model_state = {n: t[k].clone() for n, t in self.model_state.items() if n in names}
        opt = self.optimizer_state
        state = {
            i: {
                key: (v[k].clone() if isinstance(v, Tensor) and v.dim() > 0 else _to_cpu(v))
                for key, v in s.items()
            }
            for i, s in opt["state"].items()
        }
        groups = _to_cpu(opt["param_groups"])
        for group in groups:  # let the single trainer pick its own Adam implementation
            for key in ("fused", "foreach"):
                if key in group:
                    group[key] = None
        return TrainState(
            epoch=self.epoch,
            model_state=model_state,
            optimizer_state={"state": state, "param_groups": groups},
            scheduler_state=_to_cpu(self.scheduler_state),
            data_rng_state=self.data_rng_states[k].clone(),
            noise_rng_state=self.noise_rng_states[k].clone(),
            history=list(self.histories[k]),
            meta=dict(self.members[k]),
        )


def is_fusable(config: ModelConfig) -> bool:
    """MLPs and LeNet-5 can be fused; wide ResNets train one at a time (K = 1)."""
    return isinstance(config, (MLPConfig, LeNet5Config))


class _GateNoise:
    """Logistic gate noise for K members, one training step at a time.

    ``member`` mode draws each member's noise from its own generator in exactly the order
    and shapes ``train_model`` draws it (layer by layer, step by step), so members reproduce
    their single runs. On the CPU, uniform sampling is serial per generator, so one draw of
    several steps' noise gives the same numbers as the step-by-step draws: members' noise is
    pre-drawn in chunks of steps (never past the epoch's end, so the generator states at an
    epoch boundary match the single trainer's). Elsewhere each (member, layer) is one call.
    ``pack`` mode draws the whole (K, ...) noise of a layer in one call from one generator:
    fastest on a GPU, statistically the same, but not the single runs' numbers.
    """

    def __init__(
        self,
        mode: str,
        members: Sequence[MemberSpec],
        device: torch.device,
        shapes: Callable[[int], list[tuple[int, ...]]],
    ) -> None:
        self.mode = mode
        self.k = len(members)
        self.device = device
        self.shapes = shapes
        # "member": train_model's noise generator seed (seed + 1) for each member.
        seeds = [m.seed + 1 for m in members] if mode == "member" else [_pack_seed(members)]
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.chunked = mode == "member" and device.type == "cpu"
        self._buffer: Tensor | None = None
        self._offset = 0
        self._pending: list[int] = []

    def get_states(self) -> list[Tensor]:
        return [g.get_state().cpu() for g in self.generators]

    def set_states(self, states: Sequence[Tensor]) -> None:
        if len(states) != len(self.generators):
            raise ValueError("resume state has a different number of noise generators")
        for g, s in zip(self.generators, states, strict=True):
            g.set_state(s)

    def start_epoch(self, batches: Sequence[int]) -> None:
        """The batch sizes of this epoch's steps, in order."""
        self._pending = list(batches)
        self._buffer = None
        self._offset = 0

    def _step_floats(self, batch: int) -> int:
        return sum(math.prod(s) for s in self.shapes(batch))

    def _refill(self, plan: Sequence[int]) -> None:
        # Pre-draw as many whole planned steps as fit the budget (at least one), per member.
        budget = max(1, _NOISE_CHUNK_FLOATS // self.k)
        total = 0
        for n, b in enumerate(plan):
            size = self._step_floats(b)
            if n and total + size > budget:
                break
            total += size
        buf = torch.empty(self.k, total, device=self.device)
        for k, g in enumerate(self.generators):
            buf[k].uniform_(EPS, 1.0 - EPS, generator=g)
        self._buffer = buf.logit_()
        self._offset = 0

    def step(self, batch: int) -> list[Tensor]:
        """One step's noise per gated layer: (K, *single shape) each."""
        if self._pending and self._pending[0] != batch:
            raise RuntimeError("gate noise plan out of step with the data")
        shapes = self.shapes(batch)
        out = []
        if self.chunked:
            if self._buffer is None or self._offset >= self._buffer.shape[1]:
                self._refill(self._pending or [batch])
            assert self._buffer is not None
            for s in shapes:
                size = math.prod(s)
                out.append(self._buffer[:, self._offset : self._offset + size].view(self.k, *s))
                self._offset += size
            if self._pending:
                self._pending.pop(0)
            return out
        for s in shapes:
            buf = torch.empty(self.k, *s, device=self.device)
            if self.mode == "pack":
                buf.uniform_(EPS, 1.0 - EPS, generator=self.generators[0])
            else:
                for k, g in enumerate(self.generators):
                    buf[k].uniform_(EPS, 1.0 - EPS, generator=g)
            out.append(buf.logit_())
        if self._pending:
            self._pending.pop(0)
        return out


def _pack_seed(members: Sequence[MemberSpec]) -> int:
    seed = 0x9E3779B1
    for m in members:
        seed = (seed * 1000003 + int(m.seed)) % (1 << 63)
    return seed


def _build_member(
    config: ModelConfig, member: MemberSpec, settings: TrainSettings, n_train: int
) -> L0Model:
    # Exactly train_model's initialisation for this seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(member.seed)
        return build_model(
            config,
            beta=member.beta,
            lam=member.lam,
            weight_decay=settings.weight_decay,
            n_train=n_train,
            local_rep=settings.local_rep,
        )


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
) -> list[TrainResult]:
    """Train the K ``members`` of architecture ``config`` as one batched model.

    Args:
        config: an ``MLPConfig`` or ``LeNet5Config`` (``is_fusable``).
        members: one ``MemberSpec(lam, beta, seed)`` per configuration.
        settings: shared training settings (epochs, batch, optimiser, noise mode, ...).
        data: the dataset; every member sees it in its own order.
        device: where to train.
        on_epoch: called as ``on_epoch(k, record)`` for every member after each epoch.
        on_state: called once per epoch, after the ``on_epoch`` calls, with a ``FusedState``
            that ``resume=`` continues exactly (and ``state.member_state(k)`` splits).
        resume: a saved ``FusedState`` of the same members.
        noise: ``"member"`` (default): each member's own gate-noise stream, identical to
            ``train_model``'s for its seed; ``"pack"``: one stream for the pack (fewer
            kernel launches on a GPU, not reproducible by a single run).

    Returns:
        One ``TrainResult`` per member, in order: its trained single model (eval mode),
        its history and its measures, computed exactly as ``train_model`` computes them.
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
    if settings.droprate_init is not None:
        config = dataclasses.replace(config, droprate_init=settings.droprate_init)
    k_members = len(members)
    n, bs = data.n_train, settings.batch_size

    singles = [_build_member(config, m, settings, n).to(device) for m in members]
    singles[0].check_input(data.x_train[:1].to(device))
    fused = FusedL0Model.from_models(singles).to(device)
    param_names = [name for name, _ in fused.named_parameters()]
    if param_names != [name for name, _ in singles[0].named_parameters()]:
        raise RuntimeError("fused and single parameter names differ")  # a layout bug

    if settings.optimizer == "adam":
        # The fused (single-kernel) Adam: same update, far fewer passes over K× the weights.
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            fused.parameters(), lr=settings.lr, fused=True
        )
        scheduler = None
    else:
        optimizer = torch.optim.SGD(fused.parameters(), lr=settings.lr, momentum=0.9, nesterov=True)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=_milestones(settings.epochs), gamma=0.2
        )
    data_gens = [torch.Generator().manual_seed(m.seed) for m in members]
    gate_noise = _GateNoise(noise, members, device, fused.noise_shapes)
    histories: list[list[EpochRecord]] = [[] for _ in members]
    metas = [m.meta() for m in members]
    start = 0
    if resume is not None:
        if resume.members != metas or resume.noise != noise:
            raise ValueError(
                f"resume state belongs to members {resume.members} ({resume.noise} noise), "
                f"not to {metas} ({noise} noise)"
            )
        fused.load_state_dict(resume.model_state)
        optimizer.load_state_dict(resume.optimizer_state)
        if scheduler is not None and resume.scheduler_state is not None:
            scheduler.load_state_dict(resume.scheduler_state)
        for g, s in zip(data_gens, resume.data_rng_states, strict=True):
            g.set_state(s)
        gate_noise.set_states(resume.noise_rng_states)
        histories = [list(h) for h in resume.histories]
        start = resume.epoch

    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    batches = [min(bs, n - i) for i in range(0, n, bs)]
    for epoch in range(start, settings.epochs):
        t0 = time.perf_counter()
        fused.train()
        orders = torch.stack([torch.randperm(n, generator=g) for g in data_gens]).to(device)
        gate_noise.start_epoch(batches)
        loss_sum = torch.zeros(k_members, device=device)
        for i in range(0, n, bs):
            idx = orders[:, i : i + bs]  # (K, B)
            b = idx.shape[1]
            xb = as_float_images(x_train[idx])  # (K, B, C, H, W)
            if data.augment:
                xb = torch.stack([augment_crop_flip(xb[k], g) for k, g in enumerate(data_gens)])
            logits, penalty = fused.forward_train(xb, gate_noise.step(b))  # (K, B, C), (K,)
            ce = F.cross_entropy(
                logits.flatten(0, 1), y_train[idx].flatten(), reduction="none"
            ).view(k_members, b)
            member_loss = ce.mean(1) + penalty  # (K,)
            optimizer.zero_grad(set_to_none=True)
            member_loss.sum().backward()
            optimizer.step()
            fused.clamp_log_alpha_()
            loss_sum += member_loss.detach() * b
        if scheduler is not None:
            scheduler.step()
        fused.eval()
        last = epoch + 1 == settings.epochs
        accuracy: list[float | None] = [None] * k_members
        if last or (epoch + 1) % settings.eval_every == 0:
            accuracy = list(_fused_accuracy(fused, data.x_test, data.y_test, device).tolist())
        losses = (loss_sum / n).tolist()
        seconds = time.perf_counter() - t0
        records = []
        for k, single in enumerate(singles):
            fused.copy_member_to_(k, single)
            records.append(
                EpochRecord(
                    epoch=epoch + 1,
                    loss=float(losses[k]),
                    accuracy=accuracy[k],
                    expected_l0=single.expected_l0(),
                    expected_flops=single.expected_flops(),
                    seconds=seconds,
                )
            )
        for k, record in enumerate(records):
            histories[k].append(record)
            if on_epoch is not None:
                on_epoch(k, record)
        if on_state is not None:
            on_state(
                FusedState(
                    epoch=epoch + 1,
                    model_state=_to_cpu(fused.state_dict()),
                    optimizer_state=_to_cpu(optimizer.state_dict()),
                    scheduler_state=None if scheduler is None else _to_cpu(scheduler.state_dict()),
                    data_rng_states=[g.get_state() for g in data_gens],
                    noise_rng_states=gate_noise.get_states(),
                    histories=[list(h) for h in histories],
                    members=[dict(m) for m in metas],
                    noise=noise,
                    param_names=list(param_names),
                )
            )

    results = []
    for k, single in enumerate(singles):
        fused.copy_member_to_(k, single)
        single.eval()
        results.append(
            TrainResult(model=single, history=histories[k], measures=measure(single, data))
        )
    return results


# ---- choosing K ------------------------------------------------------------------------------

# Rule used without measuring (measurements in docs/benchmarks.md, "Fused sweeps").
# CPU: a pack only pays while its weights, gradients and Adam moments (16 bytes per
# parameter and member) stay in the last-level cache (32 MiB on the dev VM, some of it left
# for activations); beyond that each elementwise pass streams K× the weights from DRAM and
# a pack runs no faster than its members one by one. Grouped convolution never paid there.
_CPU_PACK_BYTES = 24 << 20
_CPU_MAX_PACK = {"mlp": 64, "lenet": 1}
_GPU_MAX_PACK = {"mlp": 256, "lenet": 128}
_measured: dict[tuple[Any, ...], int] = {}


def _param_count(config: ModelConfig) -> int:
    return sum(p.numel() for p in build_model(config).parameters())


def _kind(config: ModelConfig) -> str:
    return "mlp" if isinstance(config, MLPConfig) else "lenet"


def _bytes_per_member(config: ModelConfig, batch_size: int, local_rep: bool) -> int:
    """Rough training memory of one member: parameters with grads and Adam moments (4×)
    plus activations kept for backward (≈ 4 floats per activation and gate value)."""
    params = _param_count(config)
    if isinstance(config, MLPConfig):
        acts = config.in_features + sum(config.hidden) + config.num_classes
    else:
        assert isinstance(config, LeNet5Config)
        s1, s2, s3 = config.spatial_sizes()
        c1, c2 = config.channels
        acts = (
            config.in_channels * config.input_size**2
            + c1 * s1 * s1 * 2
            + c2 * s2 * s2 * 2
            + c2 * s3 * s3
            + config.fc_hidden
            + config.num_classes
        )
    if local_rep:
        acts *= 2
    return 4 * (4 * params + 4 * acts * batch_size)


def auto_pack_size(
    config: ModelConfig,
    device: str | torch.device = "cpu",
    *,
    members: int | None = None,
    batch_size: int = 100,
    local_rep: bool = False,
    measure_speed: bool = False,
    candidates: Sequence[int] = (2, 4, 8, 16, 32, 64, 128, 256),
    min_gain: float = 1.2,
) -> int:
    """How many members to fuse into one pack on ``device`` (1: fusion does not pay).

    Without ``measure_speed`` a rule measured with ``benchmarks/fused_vs_sequential.py``:
    WRN → 1; CPU: LeNet-5 → 1 (grouped convolution on a few cores is slower than one model
    at a time), MLP → the largest power of two whose weights, gradients and Adam moments
    (16 bytes per parameter) fit in 24 MiB, at most 64 (4 for 784-300-100); GPU: MLP up to
    256, LeNet-5 up to 128, capped so the pack's estimated training memory stays under
    half of the free device memory. With
    ``measure_speed`` it times a few training steps of one single model and of packs of
    each candidate size (about a second per candidate, cached per process) and returns the
    size with the most member-steps per second, or 1 unless that beats one model at a time
    by ``min_gain``. The result never exceeds ``members`` when given.
    """
    device = torch.device(device)
    cap = members if members is not None else max(candidates)
    if not is_fusable(config) or cap <= 1:
        return 1
    kind = _kind(config)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        fit = int(0.5 * free) // _bytes_per_member(config, batch_size, local_rep)
        limit = max(1, min(_GPU_MAX_PACK[kind], fit))
    elif measure_speed:
        limit = max(candidates)
    else:
        fit = _CPU_PACK_BYTES // (16 * _param_count(config))
        limit = max(1, min(_CPU_MAX_PACK[kind], 1 << max(0, fit.bit_length() - 1)))
    limit = min(limit, cap)
    if not measure_speed:
        return max(1, limit)
    key = (config, str(device), batch_size, local_rep, tuple(candidates), min_gain, limit)
    if key not in _measured:
        single = _member_steps_per_second(config, 0, device, batch_size, local_rep)
        best_k, best = 1, single * min_gain
        for k in sorted(c for c in candidates if 1 < c <= limit):
            rate = _member_steps_per_second(config, k, device, batch_size, local_rep)
            if rate > best:
                best_k, best = k, rate
        _measured[key] = best_k
    return _measured[key]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _member_steps_per_second(
    config: ModelConfig,
    k: int,
    device: torch.device,
    batch_size: int,
    local_rep: bool,
    *,
    seconds: float = 0.5,
) -> float:
    """Training steps × members per second on random data; ``k = 0``: one single model."""
    settings = TrainSettings(epochs=1, batch_size=batch_size, local_rep=local_rep)
    n = max(1, k)
    specs = [MemberSpec(0.1, 2 / 3, s) for s in range(n)]
    singles = [_build_member(config, m, settings, 60000).to(device) for m in specs]
    shape = singles[0].input_shape
    if isinstance(config, MLPConfig):
        shape = (1, 1, config.in_features)
    x = torch.rand(n, batch_size, *shape, device=device)
    y = torch.randint(0, 10, (n, batch_size), device=device)
    step: Callable[[], None]
    if k == 0:
        model = singles[0].train()
        model.set_noise_generator(torch.Generator(device=device).manual_seed(0))
        opt = torch.optim.Adam(model.parameters())

        def step() -> None:
            loss = F.cross_entropy(model(x[0]), y[0]) + model.penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.clamp_log_alpha_()

    else:
        fused = FusedL0Model.from_models(singles).to(device).train()
        noise = _GateNoise("member", specs, device, fused.noise_shapes)
        fopt = torch.optim.Adam(fused.parameters(), fused=True)

        def step() -> None:
            logits, penalty = fused.forward_train(x, noise.step(batch_size))
            ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            loss = ce.view(n, batch_size).mean(1) + penalty
            fopt.zero_grad(set_to_none=True)
            loss.sum().backward()
            fopt.step()
            fused.clamp_log_alpha_()

    for _ in range(3):
        step()
    _sync(device)
    steps, t0 = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        if steps % 5 == 0:
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return steps * n / elapsed
