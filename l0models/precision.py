"""Float32 matmul and convolution precision of a training run: ``"fp32"`` or ``"tf32"``.

TF32 (NVIDIA Ampere and later) rounds the inputs of float32 matrix products and
convolutions to a 10-bit mantissa: several times the throughput, about 1e-3 relative
error per product. ``"fp32"`` turns it off for both (cuDNN convolutions use TF32 by
PyTorch's default otherwise); ``"tf32"`` turns it on for both. The CPU is unaffected.
The flags are process-wide, so a trainer sets them for its run and restores them after.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import torch

__all__ = ["PRECISIONS", "float32_precision", "in_settings_precision"]

PRECISIONS = ("fp32", "tf32")
P = ParamSpec("P")
R = TypeVar("R")


def _flags() -> list[tuple[Any, str]]:
    # (object, attribute) pairs to set: the fp32_precision API of torch >= 2.9, else the
    # allow_tf32 flags (mixing the two makes torch refuse to report the precision).
    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(cuda, "fp32_precision") and hasattr(cudnn, "conv"):
        return [(cuda, "fp32_precision"), (cudnn.conv, "fp32_precision")]
    return [(cuda, "allow_tf32"), (cudnn, "allow_tf32")]


@contextmanager
def float32_precision(precision: str) -> Iterator[None]:
    """Run the block with TF32 off (``"fp32"``) or on (``"tf32"``) for CUDA matmuls and
    cuDNN convolutions; the previous settings come back afterwards."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    flags = _flags()
    saved = [getattr(obj, name) for obj, name in flags]
    tf32 = precision == "tf32"
    for obj, name in flags:
        value = bool(tf32) if name == "allow_tf32" else ("tf32" if tf32 else "ieee")
        setattr(obj, name, value)
    try:
        yield
    finally:
        for (obj, name), value in zip(flags, saved, strict=True):
            setattr(obj, name, value)


def in_settings_precision(trainer: Callable[P, R]) -> Callable[P, R]:
    """Decorate a trainer called with a keyword ``settings`` (``TrainSettings``): the run
    uses ``settings.precision``."""

    @functools.wraps(trainer)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with float32_precision(getattr(kwargs.get("settings"), "precision", "fp32")):
            return trainer(*args, **kwargs)

    return run
