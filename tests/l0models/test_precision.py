"""``training.precision``: the TF32 switches a run sets, and restores after it."""

from __future__ import annotations

import pytest
import torch

from l0models import MLPConfig, TrainSettings, synthetic_dataset, train_model
from l0models.precision import _flags, float32_precision


def _state() -> list[object]:
    return [getattr(obj, name) for obj, name in _flags()]


def test_float32_precision_sets_both_switches_and_restores_them() -> None:
    before = _state()
    with float32_precision("tf32"):
        assert all(v in ("tf32", True) for v in _state())
        with float32_precision("fp32"):
            assert all(v in ("ieee", False) for v in _state())
        assert all(v in ("tf32", True) for v in _state())
    assert _state() == before
    with pytest.raises(ValueError, match="precision"), float32_precision("bf16"):
        pass
    assert _state() == before


def test_settings_precision_is_validated_and_used_by_train_model(monkeypatch) -> None:
    with pytest.raises(ValueError, match="precision"):
        TrainSettings(epochs=1, precision="fp16")
    seen: list[list[object]] = []
    import l0models.training as training

    real = training.train_epoch

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(_state())
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", spy)
    before = _state()
    data = synthetic_dataset(n_train=50, n_test=20)
    settings = TrainSettings(epochs=1, batch_size=50, precision="tf32")
    train_model(MLPConfig(hidden=(8,)), lam=0.1, beta=0.5, seed=0, settings=settings, data=data)
    assert seen and all(v in ("tf32", True) for v in seen[0])
    assert _state() == before
    # On the CPU the flags change nothing: the same numbers as fp32.
    a = train_model(MLPConfig(hidden=(8,)), lam=0.1, beta=0.5, seed=0, settings=settings, data=data)
    fp32 = TrainSettings(epochs=1, batch_size=50)
    b = train_model(MLPConfig(hidden=(8,)), lam=0.1, beta=0.5, seed=0, settings=fp32, data=data)
    for name, t in a.model.state_dict().items():
        assert torch.equal(t, b.model.state_dict()[name]), name
