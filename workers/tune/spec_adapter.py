"""The thin adapter between a validated :class:`service.spec.SweepSpec` and ``l0models``:
the one place that knows how spec fields map to model configs and training settings.

Defaults live in the spec (``service.spec``); nothing here re-implements them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import l0models
from l0models.wrn import channel_stats
from service.spec import LeNet5Model, MLPModel, WRNModel
from service.vocabulary import ModelFormat
from workers.tune.protocol import FinishedMember

if TYPE_CHECKING:
    from l0models import Dataset, EpochRecord, ModelConfig, TrainResult
    from service.spec import SweepSpec
    from workers.tune.protocol import Member, TrainJob

__all__ = [
    "arch_config",
    "auto_pack_size",
    "dataset_cache_dir",
    "export_model",
    "finished_member",
    "load_data",
    "measures_dict",
    "pack_size_for",
    "pack_size_request",
    "train_member",
    "train_settings",
    "trial_device",
]


def arch_config(spec: SweepSpec, data: Dataset) -> ModelConfig:
    """The frozen l0models config of the spec's architecture, shaped to the dataset.

    ``training.droprate_init`` and ``model.lambda_scales`` are applied by the trainers
    through ``TrainSettings``. A WRN normalises with its dataset's own channel statistics.
    """
    model = spec.model
    shape = tuple(int(s) for s in data.input_shape)  # (C, H, W)
    classes = int(data.num_classes)
    if isinstance(model, MLPModel):
        return l0models.MLPConfig(
            hidden=tuple(model.hidden), in_features=math.prod(shape), num_classes=classes
        )
    if isinstance(model, LeNet5Model):
        return l0models.LeNet5Config(
            in_channels=shape[0], input_size=shape[-1], num_classes=classes
        )
    if isinstance(model, WRNModel):
        mean, std = channel_stats(spec.dataset)
        return l0models.WRNConfig(
            depth=model.depth, width=model.width, num_classes=classes, mean=mean, std=std
        )
    raise ValueError(f"unknown arch {model!r}")


def train_settings(spec: SweepSpec, *, weight_decay: float | None = None) -> l0models.TrainSettings:
    """``l0models.TrainSettings`` from the spec's ``training`` block and the model's
    ``lambda_scales``. ``weight_decay``: a trial's own (None: the spec's first value; a
    fused pack gives each member its own through ``MemberSpec``)."""
    t = spec.training
    droprate = t.droprate_init
    scales = spec.model.lambda_scales
    return l0models.TrainSettings(
        epochs=t.epochs,
        eval_every=t.eval_every,
        batch_size=t.batch_size,
        lr=t.lr,
        weight_decay=t.weight_decays()[0] if weight_decay is None else weight_decay,
        droprate_init=tuple(droprate) if isinstance(droprate, list) else droprate,
        optimizer=t.optimizer,
        local_rep=t.local_rep,
        lambda_scales=None if scales is None else tuple(scales),
        momentum=t.momentum,
        nesterov=t.nesterov,
        lr_milestones=None if t.lr_milestones is None else tuple(t.lr_milestones),
        lr_gamma=t.lr_gamma,
        ema=t.ema,
        precision=t.precision,
    )


def trial_device(spec: SweepSpec) -> str:
    """The torch device kind the spec's trials train on."""
    return "cuda" if spec.resources.gpus_per_trial > 0 else "cpu"


def dataset_cache_dir() -> str:
    """Where ``l0models`` caches datasets now (it follows ``$L0SWEEP_DATA_DIR``)."""
    return str(l0models.datasets.data_dir())


def load_data(spec: SweepSpec, *, root: str | None = None) -> Dataset:
    """The spec's dataset on CPU (the driver loads it once for all trials)."""
    return l0models.load_dataset(spec.dataset, root=root)


def train_member(
    job: TrainJob,
    member: Member,
    *,
    device: str,
    on_epoch: Callable[[EpochRecord, Any], None],
    resume: Any | None,
    should_stop: Callable[[Sequence[EpochRecord]], bool] | None = None,
) -> TrainResult:
    """One ordinary ``l0models.train_model`` run of ``member`` (``should_stop``: its early
    stopping decision, asked with the run's history)."""
    return l0models.train_model(
        arch_config(job.spec, job.data),
        lam=member.lam,
        beta=member.beta,
        seed=member.seed,
        settings=train_settings(job.spec, weight_decay=member.weight_decay),
        data=job.data,
        device=device,
        on_epoch=on_epoch,
        resume=resume,
        should_stop=should_stop,
    )


def measures_dict(result: TrainResult | FinishedMember) -> dict[str, Any]:
    """The §4 measures of a trained member as plain JSON-able values, with
    ``"stopped_epoch"``: the epoch early stopping ended it at, None when it trained to the
    end (a finished member saved before early stopping existed has None)."""
    if isinstance(result, FinishedMember):
        return {"stopped_epoch": None, **result.measures}
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
    out["stopped_epoch"] = None if result.stopped_epoch is None else int(result.stopped_epoch)
    return out


def export_model(result: TrainResult | FinishedMember, path: str) -> None:
    """Write the member's compacted model as a self-contained TorchScript file."""
    data = (
        result.model_bytes
        if isinstance(result, FinishedMember)
        else l0models.compact_model_bytes(result.model)
    )
    with open(path, "wb") as f:
        f.write(data)


def finished_member(result: TrainResult, *, input_shape: Sequence[int]) -> FinishedMember:
    """A trained member as checkpoints keep it: its model in every format, and measures.
    Exported now, while the model is alive: a resumed pack has only these bytes."""
    exported = l0models.export_model_files(result.model, input_shape=input_shape)
    torchscript = exported.files.get(ModelFormat.TORCHSCRIPT.value)
    return FinishedMember(
        model_bytes=(
            torchscript if torchscript is not None else l0models.compact_model_bytes(result.model)
        ),
        measures=measures_dict(result),
        files=dict(exported.files),
        errors=dict(exported.errors),
    )


def pack_size_request(spec: SweepSpec, data: Dataset) -> dict[str, Any]:
    """The arguments of :func:`pack_size_for` for the device the spec's trials will use."""
    return {
        "config": arch_config(spec, data),
        "device": trial_device(spec),
        "batch_size": spec.training.batch_size,
        "local_rep": spec.training.local_rep,
    }


def auto_pack_size(spec: SweepSpec, data: Dataset) -> int:
    """``l0models.auto_pack_size`` for the device the trials will use, measured in this
    process (uncapped: the runner decides whether the sweep has members enough for packs of
    that size). 1 for GPU trials where this process sees no GPU: the runner then asks a GPU
    worker (``workers.tune.packing.probe_pack_size_on_worker``).
    """
    return pack_size_for(**pack_size_request(spec, data))


def pack_size_for(config: ModelConfig, device: str, *, batch_size: int, local_rep: bool) -> int:
    """``l0models.auto_pack_size`` on this process's ``device``; 1 where that device is a GPU
    this process cannot see (so a probe sent to a GPU-less node answers "do not fuse")."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return 1
    return int(l0models.auto_pack_size(config, device, batch_size=batch_size, local_rep=local_rep))
