"""The fused trainer: K members trained as one model reproduce K single ``train_model`` runs.

Tolerance (CPU, float32, 2 epochs). Batched matmul and grouped convolution sum in another
order than a single model's matmul/convolution, so gradients differ in the last bits
(observed: ~1e-7 relative). Adam divides by √v̂: for a weight whose gradient is at float-noise
level (a closed gate's weights get almost none), the step direction is set by that noise, so
such an element can drift by up to one step of size ≈ lr per update. Hence, per parameter
tensor: every element within lr × steps of the single run (the distance an Adam trajectory
covers in that many steps while |m̂/√v̂| ≤ 1, the usual case; observed ≤ 4e-3 in our runs,
against bounds of 1e-2 to 2e-2), relative Frobenius difference ≤ 1e-2 (observed ≤ 5e-3,
on tiny biases), and log α within 1e-3 (observed ≤ 2e-5). Gates, architecture and accuracy
are compared after the test-time gate (Eq. 13): the kept architecture must be identical and
accuracy may differ by at most 2 test examples (observed: identical).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from l0models import (
    Dataset,
    LeNet5Config,
    MLPConfig,
    TrainSettings,
    WRNConfig,
    load_dataset,
    synthetic_dataset,
    train_model,
)
from l0models.fused import FusedState, MemberSpec, auto_pack_size, train_fused
from l0models.fused import _GateNoise as GateNoise
from l0models.gates import logistic_noise

MEMBERS = [
    MemberSpec(lam=0.0, beta=2 / 3, seed=3),
    MemberSpec(lam=0.05, beta=0.5, seed=11),
    MemberSpec(lam=0.5, beta=2 / 3, seed=12),
    MemberSpec(lam=2.0, beta=0.9, seed=13),
]


@pytest.fixture(scope="module")
def mnist_small() -> Dataset:
    """1000 real MNIST training and 1000 test images (a few seconds per run)."""
    data = load_dataset("mnist", subset=1000)
    return dataclasses.replace(data, x_test=data.x_test[:1000], y_test=data.y_test[:1000])


def assert_members_match_single(config, settings, data, members=MEMBERS) -> None:
    fused = train_fused(config, members, settings=settings, data=data)
    steps = settings.epochs * math.ceil(data.n_train / settings.batch_size)
    n_test = data.x_test.shape[0]
    assert len(fused) == len(members)
    for spec, got in zip(members, fused, strict=True):
        want = train_model(
            config, lam=spec.lam, beta=spec.beta, seed=spec.seed, settings=settings, data=data
        )
        want_sd, got_sd = want.model.state_dict(), got.model.state_dict()
        assert want_sd.keys() == got_sd.keys()
        for name, w in want_sd.items():
            diff = (got_sd[name] - w).abs()
            assert diff.max() <= settings.lr * steps, (spec, name, float(diff.max()))
            rel = float(diff.norm() / w.norm().clamp_min(1e-12))
            assert rel <= 1e-2, (spec, name, rel)
            if name.endswith("log_alpha"):
                assert diff.max() <= 1e-3, (spec, name, float(diff.max()))
        for layer_w, layer_g in zip(want.model.l0_layers(), got.model.l0_layers(), strict=True):
            assert torch.allclose(layer_g.test_gate(), layer_w.test_gate(), atol=1e-3)
        assert got.measures.architecture == want.measures.architecture
        assert abs(got.measures.accuracy - want.measures.accuracy) <= 2 / n_test
        assert got.measures.params == want.measures.params
        assert got.measures.expected_l0 == pytest.approx(want.measures.expected_l0, rel=1e-4)
        assert [r.epoch for r in got.history] == [r.epoch for r in want.history]
        for rg, rw in zip(got.history, want.history, strict=True):
            assert rg.loss == pytest.approx(rw.loss, rel=1e-4)
            assert rg.accuracy is not None and rw.accuracy is not None
            assert abs(rg.accuracy - rw.accuracy) <= 2 / n_test
            assert rg.expected_flops == pytest.approx(rw.expected_flops, rel=1e-4)
    # The members really differ from each other (λ, β and seed are each their own).
    accs = {r.measures.expected_l0 for r in fused}
    assert len(accs) == len(members)


def test_fused_mlp_matches_single_runs(mnist_small: Dataset) -> None:
    settings = TrainSettings(epochs=2, batch_size=100)
    assert_members_match_single(MLPConfig(hidden=(300, 100)), settings, mnist_small)


def test_fused_mlp_per_example_noise_matches_single_runs() -> None:
    data = synthetic_dataset(n_train=500, n_test=200)
    settings = TrainSettings(epochs=2, batch_size=64, local_rep=True)  # last batch: 52
    assert_members_match_single(MLPConfig(hidden=(64, 32)), settings, data)


def test_fused_lenet5_matches_single_runs(mnist_small: Dataset) -> None:
    data = dataclasses.replace(
        mnist_small, x_test=mnist_small.x_test[:500], y_test=mnist_small.y_test[:500]
    )
    settings = TrainSettings(epochs=2, batch_size=100)
    assert_members_match_single(LeNet5Config(), settings, data)


def test_fused_lenet5_per_example_noise_matches_single_runs() -> None:
    data = synthetic_dataset(n_train=200, n_test=100)
    settings = TrainSettings(epochs=2, batch_size=50, local_rep=True)
    config = LeNet5Config(channels=(6, 8), fc_hidden=32)
    assert_members_match_single(config, settings, data, MEMBERS[:3])


def test_fused_sgd_schedule_matches_single_runs() -> None:
    # optimizer="sgd": Nesterov momentum and the step schedule are elementwise too.
    data = synthetic_dataset(n_train=300, n_test=100)
    settings = TrainSettings(epochs=3, batch_size=50, optimizer="sgd", lr=0.05)
    assert_members_match_single(MLPConfig(hidden=(32, 16)), settings, data, MEMBERS[:2])


def test_member_noise_drawn_in_chunks_equals_single_stream(monkeypatch) -> None:
    # The CPU path pre-draws several steps at once; the numbers must be the single stream's.
    import l0models.fused as fused_module

    monkeypatch.setattr(fused_module, "_NOISE_CHUNK_FLOATS", 2 * 700)  # chunks of < 2 steps
    shapes = [(5,), (3,)]
    specs = [MemberSpec(0.1, 0.5, 7), MemberSpec(0.1, 0.5, 8)]
    noise = GateNoise("member", specs, torch.device("cpu"), lambda b: [(b, 5), (b, 3)])
    batches = [100, 100, 40]
    noise.start_epoch(batches)
    got = [noise.step(b) for b in batches]
    for k, spec in enumerate(specs):
        g = torch.Generator().manual_seed(spec.seed + 1)
        for b, step in zip(batches, got, strict=True):
            for layer, shape in zip(step, shapes, strict=True):
                want = logistic_noise((b, *shape), generator=g)
                assert torch.equal(layer[k], want)
        assert torch.equal(noise.generators[k].get_state(), g.get_state())


def test_resume_continues_exactly() -> None:
    data = synthetic_dataset(n_train=300, n_test=100)
    settings = TrainSettings(epochs=2, batch_size=50)
    config = MLPConfig(hidden=(32, 16))
    states: list[FusedState] = []
    seen: list[tuple[int, int]] = []
    straight = train_fused(
        config,
        MEMBERS,
        settings=settings,
        data=data,
        on_epoch=lambda k, r: seen.append((k, r.epoch)),
        on_state=states.append,
    )
    assert seen == [(k, e) for e in (1, 2) for k in range(len(MEMBERS))]
    assert [s.epoch for s in states] == [1, 2]
    state = FusedState.from_dict(torch.load(_saved(states[0]), weights_only=False))
    resumed = train_fused(config, MEMBERS, settings=settings, data=data, resume=state)
    for a, b in zip(straight, resumed, strict=True):
        for name, t in a.model.state_dict().items():
            assert torch.equal(t, b.model.state_dict()[name]), name
        assert [r.loss for r in a.history] == [r.loss for r in b.history]
        assert a.measures == b.measures
    with pytest.raises(ValueError, match="resume state belongs"):
        train_fused(config, MEMBERS[:2], settings=settings, data=data, resume=state)


def test_member_state_continues_in_train_model() -> None:
    # A pack's epoch-1 state, split into member k, is an ordinary train_model state.
    data = synthetic_dataset(n_train=300, n_test=100)
    settings = TrainSettings(epochs=2, batch_size=50)
    config = MLPConfig(hidden=(32, 16))
    states: list[FusedState] = []
    fused = train_fused(config, MEMBERS, settings=settings, data=data, on_state=states.append)
    for k, spec in enumerate(MEMBERS):
        alone = train_model(
            config,
            lam=spec.lam,
            beta=spec.beta,
            seed=spec.seed,
            settings=settings,
            data=data,
            resume=states[0].member_state(k),
        )
        for name, t in alone.model.state_dict().items():
            other = fused[k].model.state_dict()[name]
            assert (t - other).abs().max() <= settings.lr * 12, name
        assert alone.measures.architecture == fused[k].measures.architecture
        assert len(alone.history) == 2


def test_pack_noise_trains_members_independently() -> None:
    data = synthetic_dataset(n_train=300, n_test=100)
    settings = TrainSettings(epochs=1, batch_size=50)
    twins = [MemberSpec(0.1, 2 / 3, 5), MemberSpec(0.1, 2 / 3, 5)]
    member = train_fused(MLPConfig(hidden=(16,)), twins, settings=settings, data=data)
    pack = train_fused(MLPConfig(hidden=(16,)), twins, settings=settings, data=data, noise="pack")
    # Same seed: identical members with their own streams; the pack stream gives each
    # twin different gate noise.
    w = [r.model.state_dict()["layers.0.weight"] for r in member]
    assert torch.equal(w[0], w[1])
    p = [r.model.state_dict()["layers.0.weight"] for r in pack]
    assert not torch.equal(p[0], p[1])
    with pytest.raises(ValueError, match="per-member noise"):
        states: list[FusedState] = []
        train_fused(
            MLPConfig(hidden=(16,)),
            twins,
            settings=settings,
            data=data,
            noise="pack",
            on_state=states.append,
        )
        states[0].member_state(0)


def test_bad_arguments_say_what_is_wrong() -> None:
    data = synthetic_dataset(n_train=100, n_test=50)
    settings = TrainSettings(epochs=1)
    with pytest.raises(ValueError, match="cannot be fused"):
        train_fused(WRNConfig(depth=10, width=1), MEMBERS, settings=settings, data=data)
    with pytest.raises(ValueError, match="at least one member"):
        train_fused(MLPConfig(), [], settings=settings, data=data)
    with pytest.raises(ValueError, match="noise must be"):
        train_fused(MLPConfig(), MEMBERS, settings=settings, data=data, noise="shared")
    with pytest.raises(ValueError, match="beta"):
        train_fused(MLPConfig(), [MemberSpec(0.1, 0.0, 1)], settings=settings, data=data)
    with pytest.raises(ValueError, match="lambda"):
        train_fused(MLPConfig(), [MemberSpec(-1.0, 0.5, 1)], settings=settings, data=data)


def test_auto_pack_size_rule_and_measurement() -> None:
    assert auto_pack_size(WRNConfig(depth=10, width=1), "cpu") == 1
    # 784-300-100 has 267,794 parameters (with log α): 16 bytes each is 4.3 MB a member,
    # 5 fit in 24 MiB, rounded down to a power of two: 4. 784-64-10: 51,738 → 30 → 16.
    assert auto_pack_size(MLPConfig(), "cpu") == 4
    assert auto_pack_size(MLPConfig(), "cpu", members=3) == 3
    assert auto_pack_size(MLPConfig(hidden=(64,)), "cpu") == 16
    assert auto_pack_size(MLPConfig(), "cpu", members=1) == 1
    assert auto_pack_size(LeNet5Config(), "cpu") == 1
    k = auto_pack_size(MLPConfig(hidden=(64,)), "cpu", measure_speed=True, candidates=(2, 8))
    assert k in (1, 2, 8)


def _saved(state: FusedState):
    import io

    buf = io.BytesIO()
    torch.save(state.as_dict(), buf)
    buf.seek(0)
    return buf
