"""The fused trainer: K members trained as one model reproduce K single ``train_model`` runs.

Tolerance (CPU, float32, 2 epochs). Batched matmul and grouped convolution sum in another
order than a single model's matmul/convolution, so gradients differ in the last bits
(observed: ~1e-7 relative). Adam divides by √v̂: for a weight whose gradient is at float-noise
level (a closed gate's weights get almost none), the step direction is set by that noise, so
such an element can drift by up to one step of size ≈ lr per update. Hence, per parameter
tensor: every element within lr × steps of the single run (the distance an Adam trajectory
covers in that many steps while |m̂/√v̂| ≤ 1, the usual case; observed up to 1.3e-2 against
2e-2), a Frobenius difference ≤ 1e-2 relative to the larger of the tensor's norm and
lr × steps × √size (the norm such a drift reaches: a bias or log α vector of norm ~0.02 is
compared at that scale, not at its own), and log α within 1e-3. Observed with the
counter-based noise (issue 12) on LeNet-5: ≤ 5e-3 of the tensor's own norm for 11 of 12
members tried; member (λ 0.05, β 0.5, seed 11) drifts to 2.9e-2 of its own norm on bias
vectors of norm 0.02-0.12 (6.7e-3 at the drift scale), 4.4e-4 on log α. Gates, architecture
and accuracy are compared after the test-time gate (Eq. 13): the kept architecture must be
identical and accuracy may differ by at most 2 test examples (observed: ≤ 1).
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
from l0models.fused import FusedState, GateNoise, MemberSpec, auto_pack_size, sizing, train_fused
from l0models.measures import as_float_images
from l0models.training import init_model, noise_stream

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
            scale = max(float(w.norm()), settings.lr * steps * math.sqrt(w.numel()))
            rel = float(diff.norm()) / scale
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


def test_member_noise_is_the_single_runs_stream() -> None:
    # Member k of a pack draws train_model's counter-based noise for its seed, step by step
    # (per-example noise here, with a smaller last batch); "pack" noise is another stream.
    settings = TrainSettings(epochs=1, batch_size=100, local_rep=True)
    specs = [MemberSpec(0.1, 0.5, 7), MemberSpec(0.1, 0.5, 8)]
    config = MLPConfig(hidden=(5, 3), in_features=6)
    singles = [
        init_model(config, lam=s.lam, beta=s.beta, seed=s.seed, settings=settings, n_train=340)
        for s in specs
    ]
    cpu = torch.device("cpu")
    noise = GateNoise("member", [s.seed for s in specs], cpu, lambda b: [(b, 6), (b, 5), (b, 3)],
                      batch_size=100, chunk_floats=2 * 1700)  # fmt: skip
    streams = [
        noise_stream(s.seed, m, cpu, batch_size=100) for s, m in zip(specs, singles, strict=True)
    ]
    batches = [100, 100, 100, 40]
    for b in batches:
        got = noise.next(b)
        for k, stream in enumerate(streams):
            for layer, want in zip(got, stream.next(b), strict=True):
                assert torch.equal(layer[k], want[0])
    assert noise.step == len(batches) == streams[0].step
    pack = GateNoise("pack", [s.seed for s in specs], cpu, lambda b: [(b, 6)], batch_size=100)
    assert not torch.equal(
        pack.next(100)[0][0],
        GateNoise("member", [s.seed for s in specs], cpu, lambda b: [(b, 6)], batch_size=100).next(
            100
        )[0][0],
    )


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
    # A pack's epoch-1 state, split into member k, is an ordinary train_model state: the
    # single run continues it and ends where the pack's member k ends.
    # Tolerances: only epoch 2 (6 steps) runs apart, so the two differ by float summation
    # order (batched vs plain matmul) over 6 steps: observed ≤ 1e-7 relative (parameters,
    # test logits) and 3e-8 (epoch loss) on the CPU. Bounds of 1e-4 / 1e-6 leave 1000× / 30×
    # headroom, while a wrong continuation (a fresh optimiser, another noise or data stream)
    # was measured at 0.1 to 0.6 relative (parameters, logits) and ≥ 2e-5 (loss).
    # Elementwise, an Adam step moves an element by ≤ lr while |m̂/√v̂| ≤ 1: lr × 6 steps.
    data = synthetic_dataset(n_train=300, n_test=100)
    settings = TrainSettings(epochs=2, batch_size=50)
    steps_apart = math.ceil(data.n_train / settings.batch_size)
    config = MLPConfig(hidden=(32, 16))
    x_test = as_float_images(data.x_test)
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
        want = fused[k]
        want_sd = want.model.state_dict()
        for name, t in alone.model.state_dict().items():
            diff = t - want_sd[name]
            assert diff.abs().max() <= settings.lr * steps_apart, (k, name)
            rel = float(diff.norm() / want_sd[name].norm().clamp_min(1e-12))
            assert rel <= 1e-4, (k, name, rel)
        with torch.no_grad():
            got_logits, want_logits = alone.model(x_test), want.model(x_test)
        rel = float((got_logits - want_logits).norm() / want_logits.norm())
        assert rel <= 1e-4, (k, rel)
        # Epoch 1 is the state's own record (its wall time too), not a re-run.
        assert alone.history[0] == want.history[0]
        assert [r.epoch for r in alone.history] == [1, 2]
        assert alone.history[1].loss == pytest.approx(want.history[1].loss, rel=1e-6)
        assert alone.measures.architecture == want.measures.architecture
        assert alone.measures.accuracy == want.measures.accuracy


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


def test_auto_pack_size_cpu_rule() -> None:
    # The largest power of two of members whose parameters at 16 bytes each (weights,
    # gradients, two Adam moments) fit in 24 MiB, at most 64 for MLPs; LeNet-5 and WRN: 1.
    assert auto_pack_size(WRNConfig(depth=10, width=1), "cpu") == 1
    # 784-300-100 has 267,794 parameters (with log α): 16 bytes each is 4.3 MB a member,
    # 5 fit in 24 MiB, rounded down to a power of two: 4. 784-64-10: 51,738 → 30 → 16.
    assert auto_pack_size(MLPConfig(), "cpu") == 4
    assert auto_pack_size(MLPConfig(), "cpu", members=3) == 3
    assert auto_pack_size(MLPConfig(hidden=(64,)), "cpu") == 16
    # 784-16-10: 13,530 → 116 fit, capped at 64.
    assert auto_pack_size(MLPConfig(hidden=(16,)), "cpu") == 64
    assert auto_pack_size(MLPConfig(hidden=(16,)), "cpu", members=5) == 5
    assert auto_pack_size(MLPConfig(), "cpu", members=1) == 1
    assert auto_pack_size(LeNet5Config(), "cpu") == 1


def test_auto_pack_size_gpu_rule(monkeypatch) -> None:
    # GPU: as many members as fit in half the free memory at 4 bytes × (4 × parameters +
    # 4 × activations × batch) each, at most 256 (MLP) / 128 (LeNet-5). 784-300-100 at
    # batch 100: 4 × (4 × 267,794 + 4 × 1,194 × 100) = 6,195,104 bytes a member; with
    # per-example gates (local_rep) the activations count twice: 8,105,504.
    free = 0

    def mem_get_info(device=None) -> tuple[int, int]:
        return free, 1 << 40

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    free = 2 * 10 * 6_195_104
    assert auto_pack_size(MLPConfig(), "cuda") == 10
    assert auto_pack_size(MLPConfig(), "cuda", members=3) == 3
    assert auto_pack_size(MLPConfig(), "cuda", local_rep=True) == 7  # 61,951,040 // 8,105,504
    free = 1 << 40
    assert auto_pack_size(MLPConfig(), "cuda") == 256
    assert auto_pack_size(LeNet5Config(), "cuda") == 128
    assert auto_pack_size(WRNConfig(depth=10, width=1), "cuda") == 1
    free = 1 << 20
    assert auto_pack_size(MLPConfig(), "cuda") == 1


def test_auto_pack_size_measured_picks_the_fastest_pack(monkeypatch) -> None:
    # The throughput probe pinned to known rates (member-steps per second; 0 = one single
    # model) so the rule's answer is known exactly.
    rates = {0: 100.0, 2: 150.0, 4: 260.0, 8: 240.0}
    calls: list[int] = []

    def probe(config, k, device, batch_size, local_rep) -> float:
        calls.append(k)
        return rates[k]

    monkeypatch.setattr(sizing, "member_steps_per_second", probe)
    config = MLPConfig(hidden=(48,))  # no other test measures it: nothing cached yet
    assert auto_pack_size(config, "cpu", measure_speed=True, candidates=(8, 2, 4)) == 4
    assert calls == [0, 2, 4, 8]  # the single model, then the candidates in ascending order
    calls.clear()
    # 260 does not beat 100 × 3: fusing does not pay.
    assert auto_pack_size(config, "cpu", measure_speed=True, candidates=(2, 4), min_gain=3) == 1
    calls.clear()
    # members=2: larger candidates are not even measured.
    assert auto_pack_size(config, "cpu", members=2, measure_speed=True, candidates=(2, 4)) == 2
    assert calls == [0, 2]
    calls.clear()
    # Measured once per process and configuration.
    assert auto_pack_size(config, "cpu", measure_speed=True, candidates=(8, 2, 4)) == 4
    assert calls == []


def test_throughput_probe_runs_single_and_fused_steps() -> None:
    config = MLPConfig(hidden=(16,))
    cpu = torch.device("cpu")
    for k in (0, 2):
        rate = sizing.member_steps_per_second(config, k, cpu, 10, False, seconds=0.01)
        assert math.isfinite(rate) and rate > 0


def _saved(state: FusedState):
    import io

    buf = io.BytesIO()
    torch.save(state.as_dict(), buf)
    buf.seek(0)
    return buf


def test_fused_checkpoint_with_generator_noise_states_is_refused() -> None:
    # The format before counter-based noise kept one torch.Generator state per member.
    data = synthetic_dataset(n_train=100, n_test=50)
    states: list[FusedState] = []
    train_fused(
        MLPConfig(hidden=(8,)), MEMBERS[:2], settings=TrainSettings(epochs=1, batch_size=50),
        data=data, on_state=states.append,
    )  # fmt: skip
    assert states[0].noise_step == 2
    old = states[0].as_dict()
    old.pop("noise_step")
    old["noise_rng_states"] = [torch.Generator().get_state() for _ in MEMBERS[:2]]
    with pytest.raises(ValueError, match="cannot be resumed"):
        FusedState.from_dict(old)
