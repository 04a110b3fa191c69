"""The fused LeNet-5 formulations of ``benchmarks/lenet_fused.py`` compute what the library's
grouped convolution computes: same logits and same gradients, with and without per-example
gate noise, on the CPU (their speed is a GPU question: docs/benchmarks.md).

Tolerances (relative Frobenius): float32 formulations sum in another order (unfold + bmm,
NHWC): bound 1e-5, observed ≤ 9e-7 (logits and gradients). On the CPU ``tf32`` and
``cudnn_benchmark`` change nothing (observed 0): what they do on a GPU is only checked by
``benchmarks/gpu_check.sh``. bf16 rounds inputs and weights to 8 bits of mantissa: logits
bound 1e-2 (observed ≤ 7.7e-3), gradients 0.5 (observed ≤ 0.26, on the small log α
gradients): a sign or wiring error gives 1 to 2.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from l0models import LeNet5Config

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lenet_fused", ROOT / "benchmarks" / "lenet_fused.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("lenet_fused", module)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
CONFIG = LeNet5Config(channels=(4, 6), fc_hidden=16)


def _logits_and_grads(
    formulation: str, local_rep: bool, train: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    cpu = torch.device("cpu")
    fused = BENCH.build(3, cpu, local_rep=local_rep, config=CONFIG).train(train)
    noise = BENCH.GateNoise("member", [0, 1, 2], cpu, fused.noise_shapes, batch_size=5)
    x = torch.rand(3, 5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(3, 5, 10, generator=torch.Generator().manual_seed(1))
    with BENCH.setting(formulation, cpu):
        logits = BENCH.forward(fused, x, noise.next(5) if train else None, formulation)
    grads = torch.autograd.grad(
        (logits * weights).sum(), list(fused.parameters()), allow_unused=True
    )
    return logits.detach(), [torch.zeros(1) if g is None else g for g in grads]


@pytest.mark.parametrize("local_rep", [False, True])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize(
    "formulation", ["channels_last", "im2col", "tf32", "cudnn_benchmark", "bf16"]
)
def test_formulation_computes_the_grouped_convolutions_function(
    formulation: str, local_rep: bool, train: bool
) -> None:
    want, want_grads = _logits_and_grads("grouped", local_rep, train)
    got, got_grads = _logits_and_grads(formulation, local_rep, train)
    rel, rel_grad = (1e-2, 0.5) if formulation == "bf16" else (1e-5, 1e-5)
    assert float((got - want).norm() / want.norm()) <= rel
    for g, w in zip(got_grads, want_grads, strict=True):
        assert float((g - w).norm()) <= rel_grad * max(float(w.norm()), 1e-6)


def test_unknown_formulation_is_named() -> None:
    with pytest.raises(ValueError, match="formulation"):
        BENCH.forward(
            BENCH.build(2, torch.device("cpu"), config=CONFIG),
            torch.rand(2, 1, 1, 28, 28),
            None,
            "winograd",
        )
