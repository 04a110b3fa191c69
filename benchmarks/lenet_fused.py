"""Fused LeNet-5: candidate formulations of its K stacked convolutions, timed side by side.

What ``l0models`` runs (``grouped``): the K members' maps as one (B, K·C, H, W) tensor and
one grouped convolution per layer (groups = K). The candidates for a GPU (issue 12):

* ``channels_last``: the same grouped convolution on NHWC tensors (input and filters);
* ``cudnn_benchmark``: the same with ``torch.backends.cudnn.benchmark`` (cuDNN times its
  algorithms for each shape once and keeps the fastest);
* ``tf32``: the same with TF32 convolutions and matmuls (``l0models.precision``);
* ``bf16``: the same under ``torch.autocast(dtype=bfloat16)``;
* ``im2col``: no convolution: the patches of each member (``F.unfold``) times its filters
  as one batched matmul (K, C_out, C·k²) @ (K, C·k², B·L).

Each formulation computes the grouped one's function (tests/l0models/test_lenet_formulations.py
checks outputs and gradients on the CPU: float32 ones to 1e-5, bf16 to its rounding). The
timing is a training step (forward, cross-entropy + penalty, backward, fused Adam, log α
clamp, per-member gate noise) at batch 100 and a test-time pass over 10,000 images:
trial-epochs/s = K / (600 steps + evaluation). Speed is only meaningful on a GPU; none has
been measured here yet (docs/benchmarks.md).

    python3 benchmarks/lenet_fused.py --device cuda --ks 32,128
    .venv/bin/python benchmarks/lenet_fused.py --dry-run
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l0models import LeNet5Config, TrainSettings
from l0models.fused import FusedL0Model, FusedLeNet5, GateNoise, StackedL0Conv2d
from l0models.precision import float32_precision
from l0models.training import build_optimizer, init_model

FORMULATIONS = ("grouped", "channels_last", "cudnn_benchmark", "tf32", "bf16", "im2col")


@contextlib.contextmanager
def _setting(formulation: str, device: torch.device) -> Iterator[None]:
    # The process-wide switches a formulation runs under.
    if formulation == "tf32":
        with float32_precision("tf32"):
            yield
    elif formulation == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    elif formulation == "cudnn_benchmark":
        with torch.backends.cudnn.flags(enabled=True, benchmark=True):
            yield
    else:
        yield


def _gated_filters(
    layer: StackedL0Conv2d, noise: Tensor | None
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(filters (K, C_out, C_in, kh, kw), bias (K, C_out), per-example gates (K, B, C_out))
    with a per-member gate folded into the filters, as ``StackedL0Conv2d`` does."""
    z = layer.gates(noise)
    if z.dim() == 2:
        w = layer.weight * z[:, :, None, None, None]
        b = None if layer.bias is None else layer.bias * z
        return w, b, None
    return layer.weight, layer.bias, z


def _conv_grouped(layer: StackedL0Conv2d, h: Tensor, noise: Tensor | None, nhwc: bool) -> Tensor:
    # h (B, K·C_in, H, W) -> (B, K·C_out, H', W'): one grouped convolution.
    w, b, z = _gated_filters(layer, noise)
    k, c_out = w.shape[:2]
    w = w.reshape(k * c_out, *w.shape[2:])
    if nhwc:
        h, w = (
            h.contiguous(memory_format=torch.channels_last),
            w.contiguous(memory_format=torch.channels_last),
        )
    y = F.conv2d(h, w, None if b is None else b.reshape(-1), layer.stride, layer.padding, groups=k)
    if z is not None:
        y = y * z.transpose(0, 1).reshape(h.shape[0], k * c_out)[:, :, None, None]
    return y


def _conv_im2col(layer: StackedL0Conv2d, h: Tensor, noise: Tensor | None) -> Tensor:
    # h (K, B, C_in, H, W) -> (K, B, C_out, H', W'): patches @ filters, one bmm for all K.
    w, b, z = _gated_filters(layer, noise)
    k, c_out, c_in, kh, kw = w.shape
    batch, height, width = h.shape[1], h.shape[3], h.shape[4]
    cols = F.unfold(
        h.reshape(k * batch, c_in, height, width),
        (kh, kw),
        padding=layer.padding,
        stride=layer.stride,
    )
    patches, spots = cols.shape[1], cols.shape[2]  # C_in·kh·kw, H'·W'
    cols = cols.view(k, batch, patches, spots).transpose(1, 2).reshape(k, patches, batch * spots)
    y = torch.bmm(w.reshape(k, c_out, patches), cols)  # (K, C_out, B·L)
    if b is not None:
        y = y + b[:, :, None]
    ho = (height + 2 * layer.padding[0] - kh) // layer.stride[0] + 1
    wo = (width + 2 * layer.padding[1] - kw) // layer.stride[1] + 1
    y = y.view(k, c_out, batch, ho, wo).transpose(1, 2)  # (K, B, C_out, H', W')
    if z is not None:
        y = y * z[:, :, :, None, None]
    return y


def forward(
    fused: FusedLeNet5, x: Tensor, noises: Sequence[Tensor] | None, formulation: str
) -> Tensor:
    """Logits (K, B, classes) of the fused LeNet-5 on x (K, B, C, H, W), as ``fused(x,
    noises)`` computes them, in ``formulation`` (call it under ``setting(formulation)``)."""
    if formulation in ("grouped", "tf32", "bf16", "cudnn_benchmark"):
        return fused(x, noises).float()
    k, b = x.shape[:2]
    n1, n2, n3, n4 = [None] * 4 if noises is None else noises
    if formulation == "channels_last":
        h = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])
        h = F.max_pool2d(torch.relu(_conv_grouped(fused.conv1, h, n1, True)), 2)
        h = F.max_pool2d(torch.relu(_conv_grouped(fused.conv2, h, n2, True)), 2)
        h = h.reshape(b, k, -1).transpose(0, 1)
    elif formulation == "im2col":
        h = F.max_pool2d(torch.relu(_conv_im2col(fused.conv1, x, n1)).flatten(0, 1), 2)
        h = h.view(k, b, *h.shape[1:])
        h = F.max_pool2d(torch.relu(_conv_im2col(fused.conv2, h, n2)).flatten(0, 1), 2)
        h = h.reshape(k, b, -1)
    else:
        raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
    h = torch.relu(fused.fc1(h, n3))
    return fused.fc2(h, n4)


def setting(formulation: str, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """The process-wide switches ``formulation`` runs under (TF32, autocast, cuDNN)."""
    return _setting(formulation, device)


def build(
    k: int, device: torch.device, *, local_rep: bool = False, config: LeNet5Config | None = None
) -> FusedLeNet5:
    settings = TrainSettings(epochs=1, local_rep=local_rep)
    singles = [
        init_model(
            config or LeNet5Config(),
            lam=0.1,
            beta=(0.5, 2 / 3)[s % 2],
            seed=s,
            settings=settings,
            n_train=60_000,
        )
        for s in range(k)
    ]
    fused = FusedL0Model.from_models(singles).to(device)
    assert isinstance(fused, FusedLeNet5)
    return fused


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_formulation(
    formulation: str, k: int, device: torch.device, *, steps: int, test_images: int
) -> float:
    """Trial-epochs/s: K / (600 steps + a test pass over ``test_images``, scaled to 10,000)."""
    fused = build(k, device).train()
    opt = build_optimizer(fused.parameters(), TrainSettings(epochs=1), fused_adam=True).optimizer
    noise = GateNoise("member", list(range(k)), device, fused.noise_shapes, batch_size=100)
    x = torch.rand(k, 100, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (k, 100), device=device)
    x_test = torch.rand(test_images, 1, 28, 28, device=device)

    def step() -> None:
        logits = forward(fused, x, noise.next(100), formulation)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(k, -1)
        loss = (ce.mean(1) + fused.penalty()).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        fused.clamp_log_alpha_()

    def evaluate() -> None:
        with torch.no_grad():
            for i in range(0, test_images, 500):
                xb = x_test[i : i + 500]
                forward(fused, xb.unsqueeze(0).expand(k, *xb.shape), None, formulation).argmax(2)

    with setting(formulation, device):
        for _ in range(3):
            step()
        evaluate()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        step_s = (time.perf_counter() - t0) / steps
        t0 = time.perf_counter()
        evaluate()
        _sync(device)
        eval_s = (time.perf_counter() - t0) * 10_000 / test_images
    return k / (600 * step_s + eval_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--ks", default="32,128")
    parser.add_argument("--formulations", default=",".join(FORMULATIONS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--dry-run", action="store_true", help="CPU, K=2, 2 steps: the script")
    args = parser.parse_args()
    if args.dry_run:
        args.device, args.ks, args.steps, args.test_images, args.rounds = "cpu", "2", 2, 500, 1
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    formulations = [f for f in args.formulations.split(",") if f]
    for k in (int(v) for v in args.ks.split(",")):
        rates: dict[str, list[float]] = {f: [] for f in formulations}
        for _ in range(args.rounds):
            for f in formulations:
                rates[f].append(
                    time_formulation(f, k, device, steps=args.steps, test_images=args.test_images)
                )
        for f in formulations:
            print(
                f"FIGURE fused lenet K={k} formulation={f} member-noise eval-included on {name}: "
                f"{statistics.median(rates[f]):.3g} trial-epochs/s (median of {args.rounds}; "
                f"{args.steps} timed steps)",
                flush=True,
            )


if __name__ == "__main__":
    main()
