"""What a spec's trials will build, known before any of them runs (no torch here).

The input shape and class count of each dataset, and the parameters and forward FLOPs of
each architecture on it with given kept units per gated layer: the formulas of
``l0models``' ``model.cost(counts)`` (DESIGN §4 counting, as ``l0models.measures`` counts
the compacted model), replicated so the API can refuse a model too large to train (the
dense counts: the trials' ``params_dense``) and a budget no model can meet (one kept unit
per gated layer: the smallest model). ``tests/service/test_sizes.py`` checks them against
l0models' own counts and measures.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from service.vocabulary import Dataset

__all__ = [
    "DATASET_SHAPES",
    "DatasetShape",
    "ModelSize",
    "lenet5_params",
    "lenet5_size",
    "mlp_params",
    "mlp_size",
    "wrn_params",
    "wrn_size",
]


class DatasetShape(NamedTuple):
    """One example's (channels, height, width) and the number of classes."""

    channels: int
    height: int
    width: int
    classes: int

    @property
    def features(self) -> int:
        return self.channels * self.height * self.width


#: As ``l0models.load_dataset`` delivers them (the synthetic set is MNIST-shaped).
DATASET_SHAPES: Mapping[Dataset, DatasetShape] = MappingProxyType(
    {
        Dataset.MNIST: DatasetShape(1, 28, 28, 10),
        Dataset.CIFAR10: DatasetShape(3, 32, 32, 10),
        Dataset.CIFAR100: DatasetShape(3, 32, 32, 100),
        Dataset.SYNTHETIC: DatasetShape(1, 28, 28, 10),
    }
)

_KERNEL = 5  # LeNet-5's convolutions are 5×5


class ModelSize(NamedTuple):
    """Parameters used at inference and forward FLOPs per example (DESIGN §4)."""

    params: int
    flops: int


def _kept(kept: Sequence[int] | None, dense: Sequence[int], what: str) -> list[int]:
    if kept is None:
        return list(dense)
    if len(kept) != len(dense):
        raise ValueError(f"{what} has {len(dense)} gated layers, got {len(kept)} counts")
    return [int(k) for k in kept]


def mlp_size(
    in_features: int, hidden: Sequence[int], classes: int, kept: Sequence[int] | None = None
) -> ModelSize:
    """The MLP in → hidden… → classes keeping ``kept[i]`` inputs of linear layer ``i``
    (None: all); a layer's kept outputs are the next layer's kept inputs."""
    widths = [*_kept(kept, [in_features, *hidden], "the MLP"), classes]
    params = flops = 0
    for n_in, n_out in itertools.pairwise(widths):
        params += n_in * n_out + n_out
        flops += 2 * n_in * n_out + n_out
    return ModelSize(params, flops)


def mlp_params(in_features: int, hidden: Sequence[int], classes: int) -> int:
    """Weights and biases of the fully connected layers in → hidden… → classes."""
    return mlp_size(in_features, hidden, classes).params


def lenet5_size(
    in_channels: int,
    input_size: int,
    classes: int,
    kept: Sequence[int] | None = None,
    channels: tuple[int, int] = (20, 50),
    fc_hidden: int = 500,
) -> ModelSize:
    """LeNet-5-Caffe: conv 5×5 → pool 2 → conv 5×5 → pool 2 → fc → fc (all with biases),
    keeping ``kept`` = (conv1 maps, conv2 maps, fc1 inputs, fc2 inputs) (None: all)."""
    side1 = input_size - _KERNEL + 1  # conv1's output side
    side2 = side1 // 2 - _KERNEL + 1  # conv2's
    pooled = side2 // 2
    dense = [*channels, channels[1] * pooled * pooled, fc_hidden]
    c1, c2, k3, k4 = _kept(kept, dense, "LeNet-5")
    kk = _KERNEL * _KERNEL
    params = (
        (kk * in_channels * c1 + c1)
        + (kk * c1 * c2 + c2)
        + (k3 * k4 + k4)
        + (k4 * classes + classes)
    )
    flops = (
        (2 * kk * in_channels + 1) * c1 * side1 * side1
        + (2 * kk * c1 + 1) * c2 * side2 * side2
        + (2 * k3 * k4 + k4)
        + (2 * k4 * classes + classes)
    )
    return ModelSize(params, flops)


def lenet5_params(
    in_channels: int,
    input_size: int,
    classes: int,
    channels: tuple[int, int] = (20, 50),
    fc_hidden: int = 500,
) -> int:
    """LeNet-5-Caffe's dense parameter count (see :func:`lenet5_size`)."""
    return lenet5_size(
        in_channels, input_size, classes, channels=channels, fc_hidden=fc_hidden
    ).params


def wrn_size(
    depth: int,
    width: int,
    in_channels: int,
    classes: int,
    kept: Sequence[int] | None = None,
    input_size: int = 32,
) -> ModelSize:
    """Pre-activation WRN-depth-width: a 3×3 stem, (depth − 4)/6 blocks per group (BN, 3×3
    conv, BN, 3×3 conv, a 1×1 shortcut where the shape changes), BN and the classifier;
    convolutions without biases, batch-norm affine parameters counted. ``kept``: the output
    maps kept of each block's first conv (None: all)."""
    stages = [16, 16 * width, 32 * width, 64 * width]
    n = (depth - 4) // 6
    blocks = [(g, b, c_out) for g, c_out in enumerate(stages[1:]) for b in range(n)]
    ks = _kept(kept, [c_out for _, _, c_out in blocks], "the WRN")
    side = input_size
    params = 9 * in_channels * stages[0]
    flops = 2 * 9 * in_channels * stages[0] * side * side
    c_in = stages[0]
    for (group, block, c_out), k in zip(blocks, ks, strict=True):
        stride = 2 if group > 0 and block == 0 else 1
        side = (side + 2 - 3) // stride + 1
        hw = side * side
        params += 2 * c_in + 9 * c_in * k + 2 * k + 9 * k * c_out
        flops += 2 * 9 * c_in * k * hw + 2 * 9 * k * c_out * hw
        if c_in != c_out or stride != 1:
            params += c_in * c_out
            flops += 2 * c_in * c_out * hw
        c_in = c_out
    params += 2 * c_in + c_in * classes + classes
    flops += 2 * c_in * classes + classes
    return ModelSize(params, flops)


def wrn_params(depth: int, width: int, in_channels: int, classes: int) -> int:
    """The WRN's dense parameter count (see :func:`wrn_size`)."""
    return wrn_size(depth, width, in_channels, classes).params
