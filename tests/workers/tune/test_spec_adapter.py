"""spec_adapter maps the paper's recipe fields of a typed spec onto l0models (issue 11): every
field reaches TrainSettings / the config, and a pack's members keep their own weight decay."""

from __future__ import annotations

import pytest

from l0models.wrn import CIFAR10_MEAN, CIFAR100_MEAN, CIFAR100_STD
from service.presets import get_preset
from service.spec import SweepSpec
from workers.tune import spec_adapter
from workers.tune.engines import fused_pack_engine
from workers.tune.protocol import Member, TrainJob


class _Shape:
    def __init__(self, shape: tuple[int, int, int], classes: int) -> None:
        self.input_shape, self.num_classes = shape, classes


def test_every_recipe_field_reaches_train_settings() -> None:
    spec = SweepSpec.model_validate(
        {
            "model": {"arch": "lenet5", "lambda_scales": [100, 5, 1, 100]},
            "dataset": "mnist",
            "lambdas": [0.1],
            "training": {
                "epochs": 7,
                "eval_every": 3,
                "weight_decay": [5e-4, 0.0],
                "droprate_init": [0.1, 0.2, 0.3, 0.4],
                "optimizer": "sgd",
                "lr": 0.05,
                "momentum": 0.8,
                "nesterov": False,
                "lr_milestones": [2, 5],
                "lr_gamma": 0.5,
                "ema": 0.99,
            },
        }
    )
    s = spec_adapter.train_settings(spec)
    assert (s.epochs, s.lr, s.optimizer, s.momentum, s.nesterov) == (7, 0.05, "sgd", 0.8, False)
    assert s.eval_every == 3
    assert (s.lr_milestones, s.lr_gamma, s.ema) == ((2, 5), 0.5, 0.99)
    assert s.lambda_scales == (100.0, 5.0, 1.0, 100.0)
    assert s.droprate_init == (0.1, 0.2, 0.3, 0.4)
    assert s.weight_decay == 5e-4  # the first arm unless a trial names its own
    assert spec_adapter.train_settings(spec, weight_decay=0.0).weight_decay == 0.0
    # A spec without the recipe fields keeps its old meaning.
    plain = spec_adapter.train_settings(
        SweepSpec.model_validate({"model": {"arch": "mlp"}, "dataset": "mnist", "lambdas": [1]})
    )
    assert plain.eval_every == 1
    assert (plain.ema, plain.lambda_scales, plain.droprate_init, plain.lr_milestones) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("dataset", "mean"), [("cifar10", CIFAR10_MEAN), ("cifar100", CIFAR100_MEAN)]
)
def test_each_cifar_is_normalised_with_its_own_statistics(dataset: str, mean: tuple) -> None:
    spec = get_preset(f"wrn-28-10-{dataset}").sweep_spec()
    config = spec_adapter.arch_config(spec, _Shape((3, 32, 32), 100 if "100" in dataset else 10))  # type: ignore[arg-type]
    assert config.mean == mean  # type: ignore[union-attr]
    if dataset == "cifar100":
        assert config.std == CIFAR100_STD  # type: ignore[union-attr]


def test_a_fused_pack_keeps_each_members_weight_decay() -> None:
    spec = SweepSpec.model_validate(
        {
            "model": {"arch": "mlp", "hidden": [16]},
            "dataset": "synthetic",
            "lambdas": [0.1],
            "seeds": [0],
            "training": {"epochs": 1, "batch_size": 50, "weight_decay": [0.0, 0.5]},
        }
    )
    job = TrainJob(spec=spec)
    members = [
        Member(p.lam, p.beta, p.seed, trial_id=i, weight_decay=spec.trial_weight_decay(p))
        for i, p in enumerate(spec.expand_grid())
    ]
    fused = fused_pack_engine(
        members, job, device="cpu", on_progress=lambda _r, _s: None, resume=None
    )
    singles = [
        spec_adapter.train_member(job, m, device="cpu", on_epoch=lambda _r, _s: None, resume=None)
        for m in members
    ]
    got = [r.measures.expected_l0 for r in fused]
    want = [r.measures.expected_l0 for r in singles]
    assert got == pytest.approx(want, rel=1e-4)
    assert got[0] != pytest.approx(got[1], rel=1e-4)  # the two arms really differ
