"""The attention contract, for every registry entry: shapes, padding invariance, finite values."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lra.attention import ATTENTIONS, Attention, build_attention

DIM, HEADS = 16, 2

# Every registry entry with its defaults, plus NaLa with its optional parts and its other variant.
CONFIGS: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in sorted(ATTENTIONS)] + [
    ("nala", {"value_conv": True, "output_gate": True}),
    ("nala", {"variant": "cosine_inhibit", "learnable": True}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in kwargs.items()) for name, kwargs in CONFIGS]


def make(name: str, kwargs: dict[str, Any], seed: int = 0) -> Attention:
    torch.manual_seed(seed)
    return build_attention(name, DIM, HEADS, kwargs)


def padded_mask(lengths: list[int], total: int) -> torch.Tensor:
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]  # (B, L)


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_output_shape_and_mask_none_equals_all_real(name: str, kwargs: dict[str, Any]) -> None:
    module = make(name, kwargs)
    x = torch.randn(3, 11, DIM)
    out = module(x)
    assert out.shape == (3, 11, DIM)
    torch.testing.assert_close(module(x, torch.ones(3, 11, dtype=torch.bool)), out, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_padding_invariance(name: str, kwargs: dict[str, Any]) -> None:
    module = make(name, kwargs)
    mask = padded_mask([13, 7, 4], 13)
    mask[1, 2] = False  # a hole in the middle, not only right padding
    real = mask[..., None]  # (B, L, 1)
    x = torch.randn(3, 13, DIM)
    x_other = torch.where(real, x, 50.0 * torch.randn_like(x))  # only padded positions change
    out, out_other = module(x, mask), module(x_other, mask)
    assert not torch.equal(x, x_other)
    torch.testing.assert_close(out[mask], out_other[mask], rtol=1e-5, atol=1e-6)
    # The padding is really ignored, not merely constant: a right-padded sequence gives what the
    # unpadded sequence gives alone.
    torch.testing.assert_close(module(x[2:3, :4])[0], out[2, :4], rtol=1e-5, atol=1e-6)
    assert torch.isfinite(out).all() and torch.isfinite(out_other).all()


def assert_finite_forward_backward(module: Attention, x: torch.Tensor, mask: torch.Tensor | None) -> None:
    x = x.clone().requires_grad_()
    out = module(x, mask)
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_finite_with_padding_and_an_empty_sequence(name: str, kwargs: dict[str, Any]) -> None:
    mask = padded_mask([9, 4, 0], 9)  # the last sequence has no real token at all
    assert_finite_forward_backward(make(name, kwargs), 3.0 * torch.randn(3, 9, DIM), mask)


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_finite_at_length_4096(name: str, kwargs: dict[str, Any]) -> None:
    mask = padded_mask([4096, 3000], 4096)
    assert_finite_forward_backward(make(name, kwargs), torch.randn(2, 4096, DIM), mask)


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_finite_and_close_under_bf16_autocast(name: str, kwargs: dict[str, Any]) -> None:
    module = make(name, kwargs)
    x = torch.randn(2, 512, DIM)
    mask = padded_mask([512, 300], 512)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x, mask)
        assert out.dtype == torch.bfloat16
        assert_finite_forward_backward(module, x, mask)
    reference = module(x, mask)
    torch.testing.assert_close(out.float()[mask], reference[mask], rtol=0.05, atol=0.05)
