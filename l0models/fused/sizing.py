"""``auto_pack_size``: how many members to fuse into one pack, by rule or by measuring."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from l0models.fused.models import FusedL0Model, is_fusable
from l0models.fused.noise import GateNoise
from l0models.fused.trainer import fused_train_step
from l0models.lenet import LeNet5Config
from l0models.mlp import MLPConfig
from l0models.models import ModelConfig, build_model
from l0models.training import (
    TrainSettings,
    build_optimizer,
    init_model,
    noise_stream,
    train_step,
)

__all__ = ["auto_pack_size", "member_steps_per_second"]

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
        single = member_steps_per_second(config, 0, device, batch_size, local_rep)
        best_k, best = 1, single * min_gain
        for k in sorted(c for c in candidates if 1 < c <= limit):
            rate = member_steps_per_second(config, k, device, batch_size, local_rep)
            if rate > best:
                best_k, best = k, rate
        _measured[key] = best_k
    return _measured[key]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def member_steps_per_second(
    config: ModelConfig,
    k: int,
    device: torch.device,
    batch_size: int,
    local_rep: bool,
    *,
    seconds: float = 0.5,
) -> float:
    """The throughput probe of ``auto_pack_size``: training steps × members per second of a
    pack of ``k`` members on random data, timed for about ``seconds``; ``k = 0``: one single
    model with ``train_model``'s step."""
    settings = TrainSettings(epochs=1, batch_size=batch_size, local_rep=local_rep)
    n = max(1, k)
    seeds = list(range(n))
    singles = [
        init_model(config, lam=0.1, beta=2 / 3, seed=s, settings=settings, n_train=60000).to(device)
        for s in seeds
    ]
    shape = singles[0].input_shape
    if isinstance(config, MLPConfig):
        shape = (1, 1, config.in_features)
    x = torch.rand(n, batch_size, *shape, device=device)
    y = torch.randint(0, 10, (n, batch_size), device=device)
    step: Callable[[], None]
    if k == 0:
        model = singles[0].train()
        layers = model.l0_layers()
        single_noise = noise_stream(0, model, device, batch_size=batch_size)
        opt = build_optimizer(model.parameters(), settings).optimizer

        def step() -> None:  # train_epoch's step, gate noise included
            for layer, z in zip(layers, single_noise.next(batch_size), strict=True):
                layer.noise = z[0]
            train_step(model, opt, x[0], y[0])

    else:
        fused = FusedL0Model.from_models(singles).to(device).train()
        noise = GateNoise("member", seeds, device, fused.noise_shapes, batch_size=batch_size)
        fopt = build_optimizer(fused.parameters(), settings, fused_adam=True).optimizer

        def step() -> None:
            fused_train_step(fused, fopt, x, y, noise.next(batch_size))

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
