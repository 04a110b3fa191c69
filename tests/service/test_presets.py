"""The paper's presets (service.presets): each validates, carries the paper's numbers, and
says what it could not establish."""

from __future__ import annotations

import pytest

from service.errors import NotFoundError
from service.presets import PRESETS, get_preset
from service.spec import SweepSpec


def test_every_preset_validates_and_round_trips_as_json() -> None:
    names = [p.name for p in PRESETS]
    assert len(set(names)) == len(names) >= 6
    for preset in PRESETS:
        shape = preset.as_dict()
        assert set(shape) == {"name", "title", "description", "spec", "paper"}
        assert set(shape["paper"]) == {"error", "architecture", "source"}
        spec = SweepSpec.model_validate(shape["spec"])
        assert spec == preset.sweep_spec()
        assert spec.model_dump(mode="json") == shape["spec"]


def test_the_paper_recipes() -> None:
    lenet_sep = get_preset("lenet5-l0-sep").sweep_spec()
    assert lenet_sep.model.lambda_scales == [100, 5, 1, 100]
    assert lenet_sep.expand_grid()[0].lam == 0.1
    for name in ("wrn-28-10-cifar10", "wrn-28-10-cifar100"):
        t = get_preset(name).sweep_spec().training
        assert (t.optimizer, t.momentum, t.nesterov, t.lr, t.lr_gamma) == (
            "sgd",
            0.9,
            True,
            0.1,
            0.2,
        )
        assert (t.lr_milestones, t.epochs, t.batch_size, t.weight_decay, t.ema) == (
            [60, 120, 160],
            200,
            128,
            5e-4,
            0.99,
        )
    assert get_preset("mlp-l0").sweep_spec().training.ema == 0.999
    assert get_preset("mlp-l0").paper.as_dict() == {
        "error": 1.4,
        "architecture": "219-214-100",
        "source": "Table 1",
    }
    # What could not be established is said, not guessed silently.
    assert "cannot be established" in get_preset("mlp-l0-sep").description
    assert "Weight decay cannot be established" in get_preset("lenet5-l0").description


def test_overrides_and_unknown_names() -> None:
    spec = get_preset("mlp-l0").sweep_spec(epochs=3, lr=2e-3)
    assert (spec.training.epochs, spec.training.lr, spec.training.ema) == (3, 2e-3, 0.999)
    with pytest.raises(NotFoundError, match=r"no preset 'nope'.*mlp-l0"):
        get_preset("nope")
