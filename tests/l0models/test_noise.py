"""Counter-based gate noise: Philox-4x32-10 known answers, the NumPy and torch paths giving
the same bits, the uniforms' distribution and independence, and the step-by-step stream.

Statistical checks use fixed seeds, so they are deterministic. Each is a test at level
1e-3 (KS, χ²) or a correlation bound of 4.5/√n (two-sided level 7e-6 for independent
uniforms, whose sample correlation has standard deviation 1/√n); a generator that ignores
the seed, the step, the layer or the stream gives correlation 1 on the same check, and
``test_the_checks_catch_a_broken_hash`` runs the checks on such generators to show it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from l0models import GateConfig, prob_nonzero
from l0models.gates import gate_from_noise_
from l0models.noise import (
    CounterNoise,
    _uniforms_torch,
    counter_uniforms,
    philox4x32,
    philox4x32_numpy,
    seed_key,
)

M32 = 0xFFFFFFFF
# Random123 kat_vectors, "philox4x32 10": counter (4 words), key (2 words), output (4 words).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((M32, M32, M32, M32), (M32, M32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]

Draw = Callable[[int, int, int, int], np.ndarray]  # (seed, step, layer, n) -> n uniforms


def _draw(seed: int, step: int, layer: int, n: int, stream: int = 0) -> np.ndarray:
    u = counter_uniforms([seed], step, 1, layer, n, streams=[stream])
    return u[0, 0].double().numpy()


@pytest.mark.parametrize(("counter", "key", "want"), KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, want) -> None:
    got = philox4x32(*(torch.tensor([c]) for c in counter), *key)
    assert [int(w) for w in got] == list(want)
    got_np = philox4x32_numpy(*counter, *key)
    assert [int(w) for w in got_np] == list(want)


def test_torch_and_numpy_words_agree_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(0)
    words = torch.randint(0, 1 << 32, (6, 5000), generator=g, dtype=torch.int64)
    words[:, :4] = M32  # the largest words: every product near 2⁶⁴
    words[:, 4:8] = 0
    got = philox4x32(*words)
    want = philox4x32_numpy(*(w.numpy().astype(np.uint64) for w in words))
    for a, b in zip(got, want, strict=True):
        assert a.min() >= 0 and a.max() <= M32
        assert np.array_equal(a.numpy().astype(np.uint64), b)


@pytest.mark.parametrize(("k", "steps", "n"), [(1, 3, 1), (3, 5, 1001), (2, 2, 20_000)])
def test_cpu_uniforms_equal_the_torch_ops(k: int, steps: int, n: int) -> None:
    # The CPU path (NumPy, blocked) and the torch ops a GPU runs give the same numbers.
    keys = [3, (1 << 40) + 5, 7][:k]
    streams = [0, 1, 2][:k]
    got = counter_uniforms(keys, 17, steps, 2, n, streams=streams)
    pairs = [seed_key(s) for s in keys]
    want = _uniforms_torch(
        torch.arange(math.ceil(n / 4)),
        torch.arange(17, 17 + steps),
        torch.tensor(2),
        torch.tensor(streams),
        torch.tensor([p[0] for p in pairs]),
        torch.tensor([p[1] for p in pairs]),
    )[..., :n]
    assert got.shape == (k, steps, n) and got.dtype == torch.float32
    assert torch.equal(got, want)


def test_uniforms_are_exact_grid_points_never_zero_or_one() -> None:
    u = counter_uniforms([0, 1], 0, 64, 0, 8192).double()  # 2²⁰ values
    m = u * 2**23 - 0.5  # integers in [0, 2²³)
    assert torch.equal(m, m.round()) and m.min() >= 0 and m.max() < 2**23
    assert u.min() > 0 and u.max() < 1
    # The extremes are representable and map to finite logistic noise.
    edge = torch.tensor([0.5 * 2**-23, 1 - 0.5 * 2**-23], dtype=torch.float32)
    assert edge[0] > 0 and edge[1] < 1 and torch.isfinite(edge.logit()).all()


def _ks_p_value(sample: np.ndarray) -> float:
    # Kolmogorov-Smirnov against U(0, 1): asymptotic distribution with Stephens' correction.
    x = np.sort(sample)
    n = x.shape[0]
    i = np.arange(1, n + 1)
    d = max(float((i / n - x).max()), float((x - (i - 1) / n).max()))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    return min(
        1.0, 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    )


def _chi2_upper(df: int, z: float = 3.0902) -> float:
    # Wilson-Hilferty: the chi-square quantile at level 1e-3 (z = Φ⁻¹(0.999)).
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_uniforms_pass_ks_and_chi_square() -> None:
    u = counter_uniforms([12345, 9, 77, 2**33 + 1], 100, 64, 1, 4096).double().numpy()
    sample = u.reshape(-1)  # 2²⁰ values from four members, 64 steps
    assert _ks_p_value(sample) > 1e-3
    bins = 1024
    counts = np.bincount((sample * bins).astype(np.int64), minlength=bins)
    expected = sample.shape[0] / bins
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < _chi2_upper(bins - 1), chi2
    # Each of the 23 bits behind u is a fair coin (4.5 standard deviations).
    m = (sample * 2**23).astype(np.int64)
    for bit in range(23):
        mean = float(((m >> bit) & 1).mean())
        assert abs(mean - 0.5) < 4.5 * 0.5 / math.sqrt(sample.shape[0]), (bit, mean)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _independence_failures(draw: Draw, n: int = 1 << 16) -> list[str]:
    """The pairs of streams that look dependent: |correlation| > 4.5/√n, or a 16 × 16 χ²
    of the joint histogram above its 1e-3 quantile."""
    base = draw(101, 7, 0, n)
    others = {
        "member": draw(102, 7, 0, n),
        "step": draw(101, 8, 0, n),
        "layer": draw(101, 7, 1, n),
        "unit": np.roll(base, 1),
    }
    failures = []
    for name, other in others.items():
        r = _correlation(base, other)
        hist = np.histogram2d(base, other, bins=16, range=[[0, 1], [0, 1]])[0]
        expected = n / 256
        chi2 = float(((hist - expected) ** 2 / expected).sum())
        if abs(r) > 4.5 / math.sqrt(n) or chi2 > _chi2_upper(255):
            failures.append(f"{name}: r={r:.4f} chi2={chi2:.0f}")
    return failures


def test_streams_are_independent_across_members_steps_layers_and_units() -> None:
    assert _independence_failures(_draw) == []
    # Pack mode: one key, member k on stream k + 1.
    n = 1 << 16
    r = _correlation(_draw(5, 0, 0, n, stream=1), _draw(5, 0, 0, n, stream=2))
    assert abs(r) < 4.5 / math.sqrt(n)


def test_the_checks_catch_a_broken_hash() -> None:
    # A generator that ignores one coordinate repeats itself along it: the checks above see
    # correlation 1 there and nowhere else.
    broken: dict[str, Draw] = {
        "member": lambda seed, step, layer, n: _draw(0, step, layer, n),
        "step": lambda seed, step, layer, n: _draw(seed, 0, layer, n),
        "layer": lambda seed, step, layer, n: _draw(seed, step, 0, n),
    }
    for name, draw in broken.items():
        failures = _independence_failures(draw)
        assert [f.split(":")[0] for f in failures] == [name], failures


def _shapes(local_rep: bool) -> Callable[[int], list[tuple[int, ...]]]:
    return lambda b: [(b, 5), (b, 3)] if local_rep else [(5,), (3,)]


@pytest.mark.parametrize("local_rep", [False, True])
def test_counter_noise_is_the_same_whatever_the_chunks_or_the_pack(local_rep: bool) -> None:
    seeds = [7, 8, 9]
    batches = [4, 4, 4, 2, 4, 4, 1]
    shapes = _shapes(local_rep)

    def run(keys: list[int], chunk_floats: int, start: int = 0) -> list[list[torch.Tensor]]:
        noise = CounterNoise(
            keys, "cpu", shapes, batch_size=4, step=start, chunk_floats=chunk_floats
        )
        out = [noise.next(b) for b in batches[start:]]
        assert noise.step == len(batches)
        return out

    whole = run(seeds, 1 << 20)
    for k, seed in enumerate(seeds):
        for chunk in (1, 40, 1 << 20):
            alone = run([seed], chunk)  # one member, steps drawn one by one or a few at a time
            for step_w, step_a in zip(whole, alone, strict=True):
                for w, a in zip(step_w, step_a, strict=True):
                    assert torch.equal(w[k], a[0])
    resumed = run(seeds, 40, start=3)  # a resumed run draws what the whole run drew
    for step_w, step_r in zip(whole[3:], resumed, strict=True):
        for w, r in zip(step_w, step_r, strict=True):
            assert torch.equal(w, r)
    for step, b in zip(whole, batches, strict=True):
        assert [tuple(t.shape) for t in step] == [(3, *s) for s in shapes(b)]


def test_per_example_units_are_numbered_row_by_row() -> None:
    # Example i, group g of a (batch, groups) block is unit i·groups + g: a smaller last
    # batch gets the first rows of a full batch's block, and a larger batch than planned is
    # drawn alone with the same numbers.
    noise = CounterNoise([4], "cpu", _shapes(True), batch_size=3)
    first = noise.next(3)[0][0]
    u = counter_uniforms([4], 0, 1, 0, 3 * 5)[0, 0].logit().view(3, 5)
    assert torch.equal(first, u)
    short = CounterNoise([4], "cpu", _shapes(True), batch_size=3).next(2)[0][0]
    assert torch.equal(short, first[:2])
    long = CounterNoise([4], "cpu", _shapes(True), batch_size=2).next(3)[0][0]
    assert torch.equal(long, first)


@pytest.mark.parametrize("log_alpha", [-2.0, 0.5])
def test_counter_noise_gates_have_the_closed_form_rate(log_alpha: float) -> None:
    # Monte-Carlo P(z ≠ 0) with counter noise within 3.5 standard errors of σ(log α − β·log(−γ/ζ)).
    gate = GateConfig(beta=2 / 3)
    n = 100_000
    noise = counter_uniforms([2024], 0, 1, 0, n)[0, 0].logit_()
    z = gate_from_noise_(torch.full((n,), log_alpha), noise, gate)
    p = prob_nonzero(torch.tensor(log_alpha), gate.beta).item()
    assert abs((z > 0).double().mean().item() - p) < 3.5 * math.sqrt(p * (1 - p) / n)
