"""L0Linear / L0Conv2d: the DESIGN §3 penalty, bias handling, noise modes, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from l0models import GateConfig, L0Conv2d, L0Linear


def _p(log_alpha: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.sigmoid(log_alpha - beta * math.log(0.1 / 1.1))


def test_linear_penalty_matches_design_formula() -> None:
    torch.manual_seed(0)
    lam, wd, n = 0.7, 1e-2, 1000
    layer = L0Linear(4, 3, lam=lam, weight_decay=wd, n_train=n, gate=GateConfig(beta=0.5))
    with torch.no_grad():
        layer.log_alpha.copy_(torch.tensor([-1.0, 0.0, 0.5, 2.0]))
        layer.bias.copy_(torch.tensor([0.3, -0.2, 1.0]))  # type: ignore[union-attr]
    p = _p(layer.log_alpha.detach(), 0.5)
    w = layer.weight.detach()
    # Group j = input neuron j = column j (3 weights): Σ_j P_j Σ_o (½ wd W_oj² + λ/N),
    # bias outside every group: + ½ wd Σ b² (a cost, never a reward).
    expected = sum(
        p[j] * sum(0.5 * wd * w[o, j] ** 2 + lam / n for o in range(3)) for j in range(4)
    ) + 0.5 * wd * (0.3**2 + 0.2**2 + 1.0**2)
    assert layer.penalty().item() == pytest.approx(float(expected), rel=1e-6)


def test_bias_l2_is_a_cost_not_a_reward() -> None:
    layer = L0Linear(2, 2, lam=0.0, weight_decay=1.0, n_train=10)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.fill_(2.0)  # type: ignore[union-attr]
    assert layer.penalty().item() == pytest.approx(0.5 * 1.0 * (4 + 4))


def test_conv_penalty_includes_bias_in_each_map_group() -> None:
    torch.manual_seed(0)
    lam, wd, n = 0.3, 1e-3, 500
    conv = L0Conv2d(2, 3, 3, lam=lam, weight_decay=wd, n_train=n)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))  # type: ignore[union-attr]
    p = _p(conv.log_alpha.detach(), 2 / 3)
    w, b = conv.weight.detach(), conv.bias.detach()  # type: ignore[union-attr]
    expected = 0.0
    for c in range(3):
        # 2·3·3 = 18 weights + 1 bias per output map.
        cost = 0.5 * wd * (w[c].pow(2).sum() + b[c] ** 2) + 19 * lam / n
        expected += float(p[c] * cost)
    assert conv.penalty().item() == pytest.approx(expected, rel=1e-6)


def test_conv_bias_is_trained_and_gated() -> None:
    torch.manual_seed(0)
    conv = L0Conv2d(1, 2, 3)
    conv.train()
    conv(torch.randn(4, 1, 6, 6)).sum().backward()
    assert conv.bias is not None and conv.bias.grad is not None
    assert conv.bias.grad.abs().sum() > 0
    # A closed gate silences its map entirely, bias included.
    conv.eval()
    with torch.no_grad():
        conv.log_alpha.copy_(torch.tensor([-6.0, 6.0]))
        conv.bias.fill_(5.0)
    out = conv(torch.randn(2, 1, 6, 6))
    assert out[:, 0].abs().max().item() == 0.0 and out[:, 1].abs().max().item() > 0


@pytest.mark.parametrize("local_rep", [False, True])
def test_noise_modes(local_rep: bool) -> None:
    torch.manual_seed(0)
    layer = L0Linear(5, 2, local_rep=local_rep)
    layer.train()
    z = layer.gate_values(8)
    assert z.shape == ((8, 5) if local_rep else (5,))
    conv = L0Conv2d(1, 3, 3, local_rep=local_rep)
    conv.train()
    x = torch.randn(8, 1, 5, 5)
    assert conv(x).shape == (8, 3, 3, 3)
    if local_rep:  # per-example gates: rows differ
        assert not torch.equal(z[0], z[1])


def test_eval_mode_is_deterministic() -> None:
    layer = L0Linear(5, 2)
    layer.eval()
    x = torch.randn(3, 5)
    assert torch.equal(layer(x), layer(x))


def test_wrong_input_shapes_say_what_is_expected() -> None:
    with pytest.raises(ValueError, match=r"\(N, 5\).*\(3, 4\)"):
        L0Linear(5, 2)(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        L0Conv2d(1, 2, 3)(torch.randn(3, 2, 8, 8))


def test_negative_lambda_is_rejected() -> None:
    with pytest.raises(ValueError, match="lambda"):
        L0Linear(3, 2, lam=-0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        L0Conv2d(1, 2, 3, weight_decay=-1.0)


@pytest.mark.parametrize("weight_decay", [0.0, 5e-4])
@pytest.mark.parametrize(
    "make",
    [
        lambda wd: L0Linear(7, 4, lam=0.3, weight_decay=wd, n_train=50),
        lambda wd: L0Linear(7, 4, bias=False, lam=0.3, weight_decay=wd, n_train=50),
        lambda wd: L0Conv2d(3, 5, 3, lam=0.3, weight_decay=wd, n_train=50),
        lambda wd: L0Conv2d(3, 5, 3, bias=False, lam=0.3, weight_decay=wd, n_train=50),
    ],
)
def test_hand_written_penalty_gradients_match_autograd(make, weight_decay: float) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    layer = make(weight_decay)
    with torch.no_grad():
        layer.log_alpha.uniform_(-3, 3)
        if layer.bias is not None:
            layer.bias.normal_()
    params = [p for p in layer.parameters()]
    fast = torch.autograd.grad(layer.penalty() * 1.7, params, allow_unused=True)
    slow = torch.autograd.grad(layer.penalty_reference() * 1.7, params, allow_unused=True)
    assert layer.penalty().item() == pytest.approx(layer.penalty_reference().item(), rel=1e-6)
    for f, s in zip(fast, slow, strict=True):
        f = torch.zeros_like(s) if f is None and s is not None else f
        s = torch.zeros_like(f) if s is None and f is not None else s
        if f is not None:
            torch.testing.assert_close(f, s)


def test_first_layer_fast_path_matches_plain_autograd() -> None:
    torch.manual_seed(0)
    layer = L0Linear(9, 4)
    layer.train()
    x = torch.randn(6, 9)  # needs no gradient: the first layer's fast path
    layer.generator = torch.Generator().manual_seed(5)
    out = layer(x)
    grads = torch.autograd.grad((out * torch.arange(4.0)).sum(), list(layer.parameters()))
    layer.generator = torch.Generator().manual_seed(5)
    z = layer.gate_values(6)
    plain = torch.nn.functional.linear(x * z, layer.weight, layer.bias)
    ref = torch.autograd.grad((plain * torch.arange(4.0)).sum(), list(layer.parameters()))
    torch.testing.assert_close(out, plain)
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r)
