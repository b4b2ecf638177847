"""Feature maps on their own: hand-checked values, safe powers, fused blocks against the reference maps."""

from __future__ import annotations

import math

import pytest
import torch

from lra.attention.feature_maps import (
    CosFormerFeatureMap,
    EluFeatureMap,
    FeatureMap,
    HedgehogFeatureMap,
    NormAwareQueryPower,
    SignedPower,
    abs_pow,
    cos_angles,
    cosine_inhibit_map,
    norm_aware_query_map,
    orthogonal_gaussian,
    relu_split_map,
)


def test_elu_map_by_hand() -> None:
    # elu(x) + 1: x + 1 for x > 0, e^x for x ≤ 0; [2, 0, -1] -> [3, 1, e^-1].
    phi = EluFeatureMap()(torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(phi, torch.tensor([3.0, 1.0, math.exp(-1.0)], dtype=torch.float64))


def test_default_blocks_are_the_map_itself() -> None:
    x = torch.randn(2, 2, 5, 3)
    (block,) = EluFeatureMap().blocks(x, None)
    assert torch.equal(block, EluFeatureMap()(x))


@pytest.mark.parametrize("feature_map", [HedgehogFeatureMap(2, 3), CosFormerFeatureMap()], ids=["hedgehog", "cos"])
def test_blocks_concatenate_to_the_map(feature_map: FeatureMap) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 3)
    mask = torch.tensor([[True] * 6, [True, False, True, True, False, False]])
    blocks = feature_map.blocks(x, mask)
    assert len(blocks) == 2
    assert torch.equal(torch.cat(blocks, -1), feature_map(x, mask))


def test_nala_fused_blocks_give_the_reference_maps_scores() -> None:
    # NormAwareQueryPower (½-scaled) with SignedPower keys: the scores of norm_aware_query_map·relu_split_map.
    torch.manual_seed(0)
    q, k = (torch.randn(2, 3, 7, 4, dtype=torch.float64) for _ in range(2))
    k[0, 1, 2, 0] = 0.0  # a zero coordinate
    alpha = torch.tensor([2.0, 3.0, 0.7], dtype=torch.float64).view(3, 1, 1)  # per head
    beta = torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64).view(3, 1, 1)
    reference = norm_aware_query_map(q, alpha, beta, 1e-6) @ relu_split_map(k, alpha).transpose(-2, -1)
    q_blocks, k_blocks = NormAwareQueryPower.apply(q, alpha, beta, 1e-6), SignedPower.apply(k, alpha)
    fused = q_blocks[0] @ k_blocks[0].transpose(-2, -1) + q_blocks[1] @ k_blocks[1].transpose(-2, -1)  # (B, H, L, L)
    torch.testing.assert_close(fused, reference, rtol=1e-12, atol=1e-14)


def test_cosine_inhibit_map_by_hand() -> None:
    # x = [1, -2], direction [0.5, -1], s = 1, p = 2: tanh 0.5 = 0.46211716, tanh 1 = 0.76159416,
    # θ = 0.78539816 · [0.46211716, -0.76159416] = [0.36294597, -0.59815465], |x|^2 = [1, 4];
    # cos 0.36294597 = 0.93485498, sin 0.36294597 = 0.35502982,
    # cos 0.59815465 = 0.82637617, sin 0.59815465 = 0.56311848, so
    # φ = [1·0.93485498, 4·0.82637617, 1·0.35502982, -4·0.56311848] = [0.93485, 3.30550, 0.35503, -2.25247].
    x = torch.tensor([1.0, -2.0], dtype=torch.float64)
    phi = cosine_inhibit_map(x, torch.tensor([0.5, -1.0], dtype=torch.float64), 2.0, 1.0)
    expected = torch.tensor([0.93485, 3.30550, 0.35503, -2.25247], dtype=torch.float64)
    torch.testing.assert_close(phi, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("p", [0.3, 0.7, 1.5, 2.5, 4.2])
def test_powers_at_zero_have_finite_gradients(p: float) -> None:
    x = torch.tensor([0.0, 0.5, -0.3, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    for exponent in (p, torch.tensor(p, dtype=torch.float64, requires_grad=True)):
        # The reference map: relu(x)^p, relu(-x)^p.
        x.grad = None
        phi = relu_split_map(x, exponent)
        expected = torch.tensor([0, 0.5**p, 0, 0, 2.0**p, 0, 0, 0.3**p, 0, 0], dtype=torch.float64)
        torch.testing.assert_close(phi.detach(), expected, rtol=1e-12, atol=0)
        phi.sum().backward()
        want = torch.tensor([0, p * 0.5 ** (p - 1), -p * 0.3 ** (p - 1), 0, p * 2.0 ** (p - 1)], dtype=torch.float64)
        assert x.grad is not None
        torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=0)
        if isinstance(exponent, torch.Tensor):  # d/dp: Σ relu(±x)^p log|x|
            want_p = 0.5**p * math.log(0.5) + 0.3**p * math.log(0.3) + 2.0**p * math.log(2.0)
            assert exponent.grad is not None
            assert float(exponent.grad) == pytest.approx(want_p)
        # The fused blocks: |x|^p and sign(x)|x|^p; d/dx of (|x|^p - 2 sign(x)|x|^p) = p|x|^(p-1)(sign x - 2).
        x.grad = None
        if isinstance(exponent, torch.Tensor):
            exponent.grad = None
        magnitude, signed = SignedPower.apply(x, exponent)
        torch.testing.assert_close(magnitude.detach(), x.detach().abs() ** p, rtol=1e-12, atol=0)
        torch.testing.assert_close(signed.detach(), x.detach().sign() * x.detach().abs() ** p, rtol=1e-12, atol=0)
        (magnitude - 2 * signed).sum().backward()
        want = torch.tensor(
            [0, -p * 0.5 ** (p - 1), -3 * p * 0.3 ** (p - 1), 0, -p * 2.0 ** (p - 1)], dtype=torch.float64
        )
        assert x.grad is not None
        torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=0)
        if isinstance(exponent, torch.Tensor):
            # d/dp: Σ (|x|^p - 2 sign(x)|x|^p) log|x| over the non-zero entries.
            want_p = -(0.5**p) * math.log(0.5) + 3 * 0.3**p * math.log(0.3) - 2.0**p * math.log(2.0)
            assert exponent.grad is not None
            assert float(exponent.grad) == pytest.approx(want_p)
    y = torch.tensor([0.0, -1.5], requires_grad=True)
    abs_pow(y, 0.5).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_fused_feature_gradcheck() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, dtype=torch.float64).requires_grad_()  # |x|^p has no derivative at 0
    alpha = torch.full((3, 1), 2.5, dtype=torch.float64, requires_grad=True)
    beta = torch.full((3, 1), 0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SignedPower.apply, (x, alpha))
    assert torch.autograd.gradcheck(SignedPower.apply, (x, 0.7))
    assert torch.autograd.gradcheck(NormAwareQueryPower.apply, (x, alpha, beta, 1e-6))
    assert torch.autograd.gradcheck(NormAwareQueryPower.apply, (x, 3.0, 0.5, 1e-6))
    # A query shorter than ε: the direction is q / ε and only p depends on ‖q‖.
    small = (1e-3 * torch.randn(1, 3, 5, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(NormAwareQueryPower.apply, (small, alpha, beta, 1.0))


def test_feature_map_starts_as_the_identity_spiky_map() -> None:
    feature_map = HedgehogFeatureMap(heads=3, head_dim=4)
    assert torch.equal(feature_map.weight, torch.eye(4).expand(3, 4, 4))
    assert torch.equal(feature_map.bias, torch.zeros(3, 1, 4))
    x = torch.randn(2, 3, 5, 4)  # (B, H, L, d)
    phi = feature_map(x)  # (B, H, L, 2d)
    assert phi.shape == (2, 3, 5, 8)
    torch.testing.assert_close(phi, torch.cat([x.softmax(-1), (-x).softmax(-1)], dim=-1))
    assert (phi > 0).all()
    torch.testing.assert_close(phi[..., :4].sum(-1), torch.ones(2, 3, 5))  # each half is a distribution
    torch.testing.assert_close(phi[..., 4:].sum(-1), torch.ones(2, 3, 5))


def test_feature_map_is_per_head_affine_then_softmax() -> None:
    torch.manual_seed(0)
    feature_map = HedgehogFeatureMap(heads=2, head_dim=3)
    with torch.no_grad():
        feature_map.weight.normal_()
        feature_map.bias.normal_()
    x = torch.randn(1, 2, 4, 3)
    for h in range(2):
        y = x[0, h] @ feature_map.weight[h] + feature_map.bias[h]  # (L, d)
        torch.testing.assert_close(feature_map(x)[0, h], torch.cat([y.softmax(-1), (-y).softmax(-1)], dim=-1))


def test_orthogonal_gaussian_blocks_are_orthogonal_with_gaussian_norms() -> None:
    torch.manual_seed(0)
    w = orthogonal_gaussian(10, 4).double()  # blocks of 4, 4, then 2 rows
    assert w.shape == (10, 4)
    for block in (w[:4], w[4:8], w[8:]):
        gram = block @ block.T
        torch.testing.assert_close(gram, torch.diag(torch.diagonal(gram)), rtol=0, atol=1e-5)
    norms = w.norm(dim=-1)
    assert norms.std() > 0.1  # χ-distributed norms, not all 1 (that would bias the estimate)
    # Marginally N(0, I): E[w wᵀ] = I over many draws.
    draws = orthogonal_gaussian(4000, 4).double()  # 1000 independent blocks
    torch.testing.assert_close(draws.T @ draws / len(draws), torch.eye(4, dtype=torch.float64), rtol=0, atol=0.08)


def test_angles_by_hand() -> None:
    # M = 4 real tokens of 6: θ_i = π/2 · i / 4 for i = 1..4 = [π/8, π/4, 3π/8, π/2]; the two padded
    # positions after the sequence take position M.
    mask = torch.tensor([[True, True, True, True, False, False]])
    theta = cos_angles(mask, 6, torch.device("cpu"), torch.float64).flatten()
    expected = torch.tensor([1, 2, 3, 4, 4, 4], dtype=torch.float64) * math.pi / 8
    torch.testing.assert_close(theta, expected, rtol=0, atol=1e-15)
    # A hole: M is the position of the last real token (5 here), so every real weight stays > 0.
    holed = torch.tensor([[True, False, True, True, True, False]])
    theta = cos_angles(holed, 6, torch.device("cpu"), torch.float64).flatten()
    torch.testing.assert_close(theta, torch.tensor([1, 2, 3, 4, 5, 5], dtype=torch.float64) * math.pi / 10)
