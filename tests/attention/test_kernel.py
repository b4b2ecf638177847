"""Kernel attentions: the linear form against the O(L²) reference form (outputs and gradients), user feature maps."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lra.attention import (
    CosFormerAttention,
    HedgehogAttention,
    KernelAttention,
    LinearAttention,
    NaLaAttention,
    PerformerAttention,
    PolaFormerAttention,
)
from lra.attention.feature_maps import EluFeatureMap, FeatureMap

B, H, L, D = 2, 2, 9, 4  # head dim D

KERNELS: list[tuple[type[KernelAttention], dict[str, Any]]] = [
    (LinearAttention, {}),
    (NaLaAttention, {}),
    (NaLaAttention, {"learnable": True}),
    (NaLaAttention, {"beta": 0.0, "alpha": 0.6, "learnable": True}),  # powers below 1 near zero
    (NaLaAttention, {"variant": "cosine_inhibit"}),
    (NaLaAttention, {"variant": "cosine_inhibit", "learnable": True, "inhibit_scale": 3.0}),
    (HedgehogAttention, {}),
    (PerformerAttention, {}),  # the projection and stabilisers are shared by both forms
    (CosFormerAttention, {}),
    (PolaFormerAttention, {}),  # its learned powers are compared in test_polaformer.py
]
# Learnable feature-map parameters whose gradients are compared too (NaLa's α, β; Hedgehog's W, b).
FEATURE_PARAMETERS = ("alpha", "beta", "feature_q.weight", "feature_q.bias", "feature_k.weight", "feature_k.bias")
IDS = [cls.name + "".join(f"-{k}={v}" for k, v in kwargs.items()) for cls, kwargs in KERNELS]


def qkv_with_zeros(dtype: torch.dtype) -> list[torch.Tensor]:
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, L, D, dtype=dtype) for _ in range(3))
    q[0, 0, 1] = 0.0  # a whole zero query vector
    k[0, 1, 2] = 0.0  # a whole zero key vector
    q[1, 1, 3, 0] = 0.0  # single zero coordinates
    k[1, 0, 4, 2] = 0.0
    return [t.requires_grad_() for t in (q, k, v)]


def outputs_and_grads(
    module: KernelAttention, quadratic: bool, mask: torch.Tensor | None, dtype: torch.dtype
) -> list[torch.Tensor]:
    q, k, v = qkv_with_zeros(dtype)
    attend = module.attend_quadratic if quadratic else module.attend
    out = attend(q, k, v, mask)
    weights = torch.linspace(-1.0, 2.0, out.numel(), dtype=dtype).view_as(out)
    inputs = [q, k, v, *(p for n, p in module.named_parameters() if n in FEATURE_PARAMETERS)]
    grads = torch.autograd.grad((out * weights).sum(), inputs, allow_unused=True)
    return [out.detach(), *(g if g is not None else torch.zeros_like(t) for g, t in zip(grads, inputs, strict=True))]


@pytest.mark.parametrize("padded", [False, True], ids=["no-mask", "padded"])
@pytest.mark.parametrize(("cls", "kwargs"), KERNELS, ids=IDS)
def test_linear_form_matches_quadratic_float64(
    cls: type[KernelAttention], kwargs: dict[str, Any], padded: bool
) -> None:
    module = cls(H * D, H, **kwargs).double()
    mask = torch.arange(L)[None, :] < torch.tensor([L, 5])[:, None] if padded else None
    fast = outputs_and_grads(module, False, mask, torch.float64)
    reference = outputs_and_grads(module, True, mask, torch.float64)
    learned = 4 if cls is HedgehogAttention else 2 if kwargs.get("learnable") else 0  # W_q, b_q, W_k, b_k | α, β
    assert len(fast) == 4 + learned  # out, dq, dk, dv, then the learned feature-map parameters
    for a, b in zip(fast, reference, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert fast[1].abs().sum() > 0 and fast[2].abs().sum() > 0  # gradients really flow to q and k


@pytest.mark.parametrize(("cls", "kwargs"), KERNELS, ids=IDS)
def test_linear_form_matches_quadratic_float32(cls: type[KernelAttention], kwargs: dict[str, Any]) -> None:
    module = cls(H * D, H, **kwargs)
    mask = torch.arange(L)[None, :] < torch.tensor([6, L])[:, None]
    fast = outputs_and_grads(module, False, mask, torch.float32)
    reference = outputs_and_grads(module, True, mask, torch.float32)
    for a, b in zip(fast, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("cls", "kwargs"), KERNELS, ids=IDS)
def test_linear_form_gradcheck(cls: type[KernelAttention], kwargs: dict[str, Any]) -> None:
    # Finite differences check what both forms share (norm, exponent, direction), which the
    # comparison with the quadratic form cannot see.
    torch.manual_seed(1)
    module = cls(6, 2, **kwargs).double()
    q, k, v = (torch.randn(1, 2, 5, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.tensor([[True, True, True, True, False]])
    assert torch.autograd.gradcheck(lambda q, k, v: module.attend(q, k, v, mask), (q, k, v))


def test_padded_keys_change_nothing_in_the_linear_form() -> None:
    module = NaLaAttention(H * D, H)
    q, k, v = (t.detach() for t in qkv_with_zeros(torch.float32))
    mask = torch.arange(L)[None, :] < 5  # (1, L) broadcast over the batch
    mask = mask.expand(B, L)
    k2, v2 = k.clone(), v.clone()
    k2[..., 5:, :] = 1e3
    v2[..., 5:, :] = -1e3
    out, out2 = module.attend(q, k, v, mask), module.attend(q, k2, v2, mask)
    torch.testing.assert_close(out, out2, rtol=0, atol=0)
    torch.testing.assert_close(out, module.attend(q, k[..., :5, :], v[..., :5, :], None), rtol=1e-6, atol=1e-6)


class SquaredReLU(FeatureMap):
    """φ(x) = relu(x)², a map written as a user would; it records the mask it was given."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.seen_mask = mask
        return torch.relu(x).square()  # (B, H, L, d)


def test_kernel_attention_from_a_feature_map_alone() -> None:
    torch.manual_seed(0)
    feature_map = SquaredReLU()
    module = KernelAttention(H * D, H, feature_map, eps=1e-6).double()
    q, k, v = (t.detach() for t in qkv_with_zeros(torch.float64))
    mask = torch.arange(L)[None, :] < torch.tensor([L, 5])[:, None]  # (B, L)
    # Written out: A_ij = relu(q_i)²·relu(k_j)² over the real keys, rows normalised (sums over n keys / n).
    a = (torch.relu(q).square() @ torch.relu(k).square().transpose(-2, -1)) * mask[:, None, None, :]  # (B, H, L, L)
    n = mask.sum(-1).to(a.dtype)[:, None, None, None]  # (B, 1, 1, 1)
    expected = (a / n @ v) / ((a / n).sum(-1, keepdim=True) + 1e-6)
    for attend in (module.attend, module.attend_quadratic):
        feature_map.seen_mask = None
        torch.testing.assert_close(attend(q, k, v, mask), expected, rtol=1e-10, atol=1e-12)
        assert feature_map.seen_mask is mask  # the map always receives the mask
    assert module.feature_q is module.feature_k  # one map for queries and keys
    fast, reference = (outputs_and_grads(module, quadratic, mask, torch.float64) for quadratic in (False, True))
    for a_, b_ in zip(fast, reference, strict=True):
        torch.testing.assert_close(a_, b_, rtol=1e-10, atol=1e-12)


def test_kernel_attention_with_separate_query_and_key_maps() -> None:
    torch.manual_seed(0)
    module = KernelAttention(H * D, H, EluFeatureMap(), SquaredReLU()).double()
    q, k, v = (t.detach() for t in qkv_with_zeros(torch.float64))
    fq, fk = module.feature_maps(q, k)
    torch.testing.assert_close(fq, torch.nn.functional.elu(q) + 1.0, rtol=0, atol=0)
    torch.testing.assert_close(fk, torch.relu(k).square(), rtol=0, atol=0)
    torch.testing.assert_close(module.attend(q, k, v, None), module.attend_quadratic(q, k, v, None))
    x = torch.randn(2, 7, H * D, dtype=torch.float64)
    mask = torch.arange(7)[None, :] < torch.tensor([7, 4])[:, None]
    torch.testing.assert_close(module(x, mask)[1, :4], module(x[1:, :4])[0], rtol=1e-10, atol=1e-12)


def test_kernel_attention_without_a_feature_map_says_so() -> None:
    module = KernelAttention(8, 2)
    with pytest.raises(TypeError, match=r"^kernel: a kernel attention needs a feature_map or a feature_maps method$"):
        module(torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match=r"^kernel: eps must be > 0, got 0\.0$"):
        KernelAttention(8, 2, EluFeatureMap(), eps=0.0)
