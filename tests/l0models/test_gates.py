"""Hard-concrete gates: closed forms, Monte-Carlo agreement, Eq. 13, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from l0models import GateConfig, L0Linear
from l0models.gates import (
    LOG_ALPHA_MAX,
    LOG_ALPHA_MIN,
    clamp_log_alpha_,
    hard_concrete,
    init_log_alpha_,
    logistic_noise,
    prob_nonzero,
    sample_gate,
    test_time_gate,
)


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.parametrize("beta", [0.1, 2 / 3, 1.5])
def test_prob_nonzero_is_the_closed_form(beta: float) -> None:
    gamma, zeta = -0.1, 1.1
    log_alpha = torch.tensor([-3.0, -0.5, 0.0, 1.0, 4.0], dtype=torch.float64)
    got = prob_nonzero(log_alpha, beta, gamma, zeta)
    for la, p in zip(log_alpha.tolist(), got.tolist(), strict=True):
        assert p == pytest.approx(_sigmoid(la - beta * math.log(-gamma / zeta)), rel=1e-12)


@pytest.mark.parametrize("beta", [0.25, 2 / 3, 1.2])
@pytest.mark.parametrize("log_alpha", [-2.0, 0.0, 1.5])
def test_monte_carlo_prob_nonzero_agrees_within_three_standard_errors(
    log_alpha: float, beta: float
) -> None:
    gate = GateConfig(beta=beta)
    n = 100_000
    la = torch.full((n,), log_alpha, dtype=torch.float64)
    z = sample_gate(la, gate, generator=torch.Generator().manual_seed(1234))
    estimate = (z > 0).double().mean().item()
    p = prob_nonzero(torch.tensor(log_alpha), beta).item()
    standard_error = math.sqrt(p * (1 - p) / n)
    assert abs(estimate - p) < 3 * standard_error


def test_samples_lie_in_unit_interval_with_mass_at_both_ends() -> None:
    z = sample_gate(torch.zeros(50_000), GateConfig(), generator=torch.Generator().manual_seed(0))
    assert z.min().item() == 0.0 and z.max().item() == 1.0
    assert ((z > 0) & (z < 1)).any()


def test_test_time_gate_is_eq_13() -> None:
    gamma, zeta = -0.1, 1.1
    log_alpha = torch.tensor([-5.0, -2.5, -2.0, 0.0, 2.0, 2.5, 5.0], dtype=torch.float64)
    got = test_time_gate(log_alpha, gamma, zeta).tolist()
    for la, z in zip(log_alpha.tolist(), got, strict=True):
        expected = min(1.0, max(0.0, _sigmoid(la) * (zeta - gamma) + gamma))
        assert z == pytest.approx(expected, abs=1e-12)
    # Eq. 13 has no β and no noise: the same for any temperature, exactly 0 and 1 reached.
    assert got[0] == 0.0 and got[-1] == 1.0


def test_custom_autograd_matches_plain_autograd() -> None:
    torch.manual_seed(0)
    la = torch.randn(7, dtype=torch.float64, requires_grad=True)
    noise = logistic_noise((5, 7), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = hard_concrete(la, noise, 0.5)
    g = torch.randn_like(z)
    (grad_custom,) = torch.autograd.grad((z * g).sum(), la)
    la2 = la.detach().clone().requires_grad_(True)
    z2 = hard_concrete(la2, noise, torch.tensor(0.5, dtype=torch.float64))  # plain path
    (grad_plain,) = torch.autograd.grad((z2 * g).sum(), la2)
    assert torch.equal(z.detach(), z2.detach())
    torch.testing.assert_close(grad_custom, grad_plain)
    assert torch.autograd.gradcheck(
        lambda a: hard_concrete(a, noise, 0.5), (la.detach().clone().requires_grad_(True),)
    )


def test_gradients_reach_log_alpha_and_weights() -> None:
    torch.manual_seed(0)
    layer = L0Linear(6, 3, lam=0.1, weight_decay=5e-4, n_train=100)
    layer.train()
    out = layer(torch.randn(8, 6))
    (out.pow(2).sum() + layer.penalty()).backward()
    assert layer.log_alpha.grad is not None and layer.log_alpha.grad.abs().sum() > 0
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_init_and_clamp() -> None:
    la = torch.empty(20_000)
    init_log_alpha_(la, 0.2, generator=torch.Generator().manual_seed(0))
    assert la.mean().item() == pytest.approx(math.log(0.8 / 0.2), abs=1e-3)
    assert la.std().item() == pytest.approx(0.01, rel=0.05)
    la.uniform_(-10, 10)
    clamp_log_alpha_(la)
    assert la.min().item() == pytest.approx(LOG_ALPHA_MIN, abs=1e-6)
    assert la.max().item() == pytest.approx(LOG_ALPHA_MAX, abs=1e-6)
    assert pytest.approx(math.log(0.01)) == LOG_ALPHA_MIN
    assert pytest.approx(math.log(100)) == LOG_ALPHA_MAX


@pytest.mark.parametrize("beta", [0.0, -0.5, float("nan")])
def test_non_positive_beta_is_rejected(beta: float) -> None:
    with pytest.raises(ValueError, match="beta"):
        GateConfig(beta=beta)


def test_bad_droprate_is_rejected() -> None:
    with pytest.raises(ValueError, match="droprate"):
        init_log_alpha_(torch.empty(3), 1.0)
