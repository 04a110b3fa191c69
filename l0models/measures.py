"""Measures of DESIGN §4: accuracy, params, sparsity and FLOPs of the compacted model, and
their expectations under the gates' P(z ≠ 0)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from l0models.compaction import ConstantMaps, compact

if TYPE_CHECKING:
    from l0models.base import L0Model
    from l0models.datasets import Dataset

__all__ = [
    "Measures",
    "count_flops",
    "count_params",
    "evaluate_accuracy",
    "measure",
]


@dataclass
class Measures:
    """What every trial reports (DESIGN §4); ``as_dict()`` gives the JSON-ready metrics."""

    accuracy: float
    error: float
    params: int
    params_dense: int
    sparsity: float
    flops: int
    flops_dense: int
    expected_flops: float
    expected_l0: float
    architecture: list[int] = field(default_factory=list)
    # Test accuracy of the raw (not averaged) parameters; set by the trainers (= accuracy
    # without an EMA), None where nobody trained the model.
    accuracy_raw: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_params(module: nn.Module) -> int:
    """Parameters used at inference: weights, biases, batch-norm affine parameters."""
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def count_flops(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs per example of linear and conv layers, from one example's forward pass.

    Linear n → m: 2·n·m + m (no bias: 2·n·m). Conv: (2·k_h·k_w·C_in/groups + 1)·C_out·H_out·W_out
    with the spatial size of the actual output (no bias: drop the + 1).
    """
    total = 0

    def on_linear(m: nn.Module, _inp: Any, out: Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Linear)
        total += (2 * m.in_features + (m.bias is not None)) * m.out_features

    def on_conv(m: nn.Module, _inp: Any, out: Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Conv2d)
        kh, kw = m.kernel_size
        per_output = 2 * kh * kw * m.in_channels // m.groups + (m.bias is not None)
        total += per_output * out.shape[1] * out.shape[2] * out.shape[3]

    def on_constant(m: nn.Module, _inp: Any, out: Tensor) -> None:
        nonlocal total
        total += out[0].numel()  # a conv with no kept inputs: one bias add per output

    handles = []
    for m in module.modules():
        if isinstance(m, ConstantMaps):
            handles.append(m.register_forward_hook(on_constant))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(on_linear))
        elif isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(on_conv))
    was_training = module.training
    try:
        device = next((t.device for t in module.state_dict().values()), torch.device("cpu"))
        module.eval()
        module(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return total


@torch.no_grad()
def evaluate_accuracy(module: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``module`` (in eval mode) on images ``x`` (float in [0, 1] or uint8)."""
    was_training = module.training
    module.eval()
    device = next((t.device for t in module.state_dict().values()), x.device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        for i in range(0, x.shape[0], batch_size):
            xb = as_float_images(x[i : i + batch_size].to(device))
            correct += (module(xb).argmax(1) == y[i : i + batch_size].to(device)).sum()
    finally:
        module.train(was_training)
    return float(correct) / max(1, x.shape[0])


def as_float_images(x: Tensor) -> Tensor:
    """uint8 pixels → float in [0, 1]; float input is returned unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


@torch.no_grad()
def measure(model: L0Model, dataset: Dataset, *, batch_size: int = 1000) -> Measures:
    """All measures of ``model`` with deterministic test-time gates, on its compacted form.

    Accuracy is that of the compacted model on ``dataset``'s test split; params and FLOPs
    are counted on the compacted module; the dense numbers and expectations come from the
    model's cost formula (tested against the module counts).
    """
    was_training = model.training
    model.eval()
    try:
        compacted = compact(model)
        accuracy = evaluate_accuracy(
            compacted, dataset.x_test, dataset.y_test, batch_size=batch_size
        )
        params = count_params(compacted)
        flops = count_flops(compacted, model.input_shape)
        params_dense, flops_dense = model.cost(model.dense_counts())
        return Measures(
            accuracy=accuracy,
            error=1.0 - accuracy,
            params=params,
            params_dense=int(params_dense),
            sparsity=1.0 - params / float(params_dense),
            flops=flops,
            flops_dense=int(flops_dense),
            expected_flops=model.expected_flops(),
            expected_l0=model.expected_l0(),
            architecture=model.architecture(),
        )
    finally:
        model.train(was_training)
