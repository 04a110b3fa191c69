"""The thin adapter between a sweep spec (JSON) and ``l0models``: the one place that knows
how spec fields map to model configs and training settings."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import l0models

if TYPE_CHECKING:
    from l0models import Dataset, EpochRecord, TrainResult
    from workers.trainable import Member, PackEngine, TrainJob

__all__ = [
    "arch_config",
    "auto_pack_size",
    "export_model",
    "fused_engine",
    "load_data",
    "measures_dict",
    "pack_size_for",
    "pack_size_request",
    "train_member",
    "train_settings",
]


def arch_config(spec: Mapping[str, Any], data: Dataset) -> Any:
    """The frozen l0models config of the spec's architecture, shaped to the dataset.

    ``training.droprate_init`` is applied by ``train_model`` through ``TrainSettings``.
    """
    model = spec["model"]
    shape = tuple(int(s) for s in data.input_shape)  # (C, H, W)
    classes = int(data.num_classes)
    if model["arch"] == "mlp":
        return l0models.MLPConfig(
            hidden=tuple(model["hidden"]), in_features=math.prod(shape), num_classes=classes
        )
    if model["arch"] == "lenet5":
        return l0models.LeNet5Config(
            in_channels=shape[0], input_size=shape[-1], num_classes=classes
        )
    if model["arch"] == "wrn":
        return l0models.WRNConfig(
            depth=int(model["depth"]), width=int(model["width"]), num_classes=classes
        )
    raise ValueError(f"unknown arch {model['arch']!r}")


def train_settings(spec: Mapping[str, Any]) -> Any:
    """``l0models.TrainSettings`` from the spec's ``training`` block."""
    t = spec["training"]
    return l0models.TrainSettings(
        epochs=int(t["epochs"]),
        batch_size=int(t["batch_size"]),
        lr=float(t["lr"]),
        weight_decay=float(t["weight_decay"]),
        droprate_init=t.get("droprate_init"),
        optimizer=t.get("optimizer", "adam"),
        local_rep=bool(t.get("local_rep", False)),
    )


def dataset_cache_dir() -> str:
    """Where ``l0models`` caches datasets now (it follows ``$L0SWEEP_DATA_DIR``)."""
    return str(l0models.datasets.data_dir())


def load_data(spec: Mapping[str, Any], *, root: str | None = None) -> Dataset:
    """The spec's dataset on CPU (the driver loads it once for all trials)."""
    return l0models.load_dataset(spec["dataset"], root=root)


def train_member(
    job: TrainJob,
    member: Member,
    *,
    device: str,
    on_epoch: Callable[[EpochRecord, Any], None],
    resume: Any | None,
) -> TrainResult:
    """One ordinary ``l0models.train_model`` run of ``member``."""
    return l0models.train_model(
        arch_config(job.spec, job.data),
        lam=member.lam,
        beta=member.beta,
        seed=member.seed,
        settings=train_settings(job.spec),
        data=job.data,
        device=device,
        on_epoch=on_epoch,
        resume=resume,
    )


def measures_dict(result: TrainResult) -> dict[str, Any]:
    """The §4 measures of a trained member as plain JSON-able values."""
    raw = result.measures.as_dict()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "architecture":
            out[key] = [int(v) for v in value]
        elif isinstance(value, bool) or value is None:
            out[key] = value
        elif isinstance(value, int):
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out


def export_model(result: TrainResult, path: str) -> None:
    """Write the member's compacted model as a self-contained TorchScript file."""
    with open(path, "wb") as f:
        f.write(l0models.compact_model_bytes(result.model))


def pack_size_request(spec: Mapping[str, Any], data: Dataset) -> dict[str, Any]:
    """The arguments of :func:`pack_size_for` for the device the spec's trials will use."""
    return {
        "config": arch_config(spec, data),
        "device": "cuda" if float(spec["resources"]["gpus_per_trial"]) > 0 else "cpu",
        "batch_size": int(spec["training"]["batch_size"]),
        "local_rep": bool(spec["training"].get("local_rep", False)),
    }


def auto_pack_size(spec: Mapping[str, Any], data: Dataset) -> int:
    """``l0models.auto_pack_size`` for the device the trials will use, measured in this
    process (uncapped: the runner decides whether the sweep has members enough for packs of
    that size). 1 for GPU trials where this process sees no GPU: the runner then asks a GPU
    worker (``runner.probe_pack_size_on_worker``).
    """
    return pack_size_for(**pack_size_request(spec, data))


def pack_size_for(config: Any, device: str, *, batch_size: int, local_rep: bool) -> int:
    """``l0models.auto_pack_size`` on this process's ``device``; 1 where that device is a GPU
    this process cannot see (so a probe sent to a GPU-less node answers "do not fuse")."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return 1
    return int(l0models.auto_pack_size(config, device, batch_size=batch_size, local_rep=local_rep))


def fused_engine() -> PackEngine | None:
    """The fused K-member engine of issue 5 (None where ``l0models.fused`` is missing)."""
    try:
        from workers.fused import fused_pack_engine
    except ImportError:
        return None
    return fused_pack_engine
