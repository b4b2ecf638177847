"""Hedgehog specifics: the spiky feature map, its identity initialisation, and its learnable weights."""

from __future__ import annotations

import torch

from lra.attention import HedgehogAttention
from lra.attention.feature_maps import HedgehogFeatureMap


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


def test_query_and_key_maps_are_learned() -> None:
    torch.manual_seed(0)
    module = HedgehogAttention(8, 2)
    names = {name for name, _ in module.named_parameters()}
    assert {"feature_q.weight", "feature_q.bias", "feature_k.weight", "feature_k.bias"} <= names
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    module(torch.randn(2, 6, 8), mask).square().sum().backward()
    for feature_map in (module.feature_q, module.feature_k):
        assert feature_map.weight.grad is not None and feature_map.weight.grad.abs().sum() > 0
        assert feature_map.bias.grad is not None and feature_map.bias.grad.abs().sum() > 0


def test_linear_form_matches_quadratic_with_trained_maps() -> None:
    # test_linear_form checks the identity initialisation; here W and b are away from it.
    torch.manual_seed(0)
    module = HedgehogAttention(8, 2).double()
    with torch.no_grad():
        for parameter in (*module.feature_q.parameters(), *module.feature_k.parameters()):
            parameter.add_(0.5 * torch.randn_like(parameter))
    q, k, v = (torch.randn(2, 2, 7, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.arange(7)[None, :] < torch.tensor([7, 4])[:, None]
    inputs = [q, k, v, *module.feature_q.parameters(), *module.feature_k.parameters()]
    results = []
    for attend in (module.attend, module.attend_quadratic):
        out = attend(q, k, v, mask)
        results.append([out, *torch.autograd.grad(out.sin().sum(), inputs)])
    for fast, reference in zip(*results, strict=True):
        torch.testing.assert_close(fast, reference, rtol=1e-10, atol=1e-12)
