"""Hedgehog specifics: learned query and key maps, and both forms with maps away from their initialisation."""

from __future__ import annotations

import torch

from lra.attention import HedgehogAttention


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
