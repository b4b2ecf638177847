"""Attentions written the way a user would, outside lra.attention: ones that follow the contract with a typed option,
broken ones, each with one mistake that quietly ruins LRA numbers and that the conformance kit must catch, and classes
that break the contract; plus `install_entry_points`, a minimal installed distribution registering names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lra.attention import ENTRY_POINT_GROUP, Attention, FeatureMap, KernelAttention
from lra.attention.ops import quadratic_attention


class ScaledElu(FeatureMap):
    """φ(x) = elu(x / temperature) + 1."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return F.elu(x / self.temperature) + 1.0  # (B, H, L, d)


class TemperedLinear(KernelAttention):
    """A correct kernel attention with one typed option, built from a feature map alone."""

    def __init__(self, dim: int, heads: int, *, temperature: float = 1.0, eps: float = 1e-6) -> None:
        if not temperature > 0:
            raise ValueError(f"tempered: temperature must be > 0, got {temperature}")
        super().__init__(dim, heads, ScaledElu(temperature), eps=eps)


class Plain(nn.Module):
    """A correct attention that is not an lra Attention subclass: a masked softmax over one head, typed option."""

    def __init__(self, dim: int, heads: int, scale: float = 1.0) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.scale = scale

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, L, D) each
        keep = None if mask is None else (mask | ~mask.any(-1, keepdim=True))[:, None, :]  # (B, 1, L)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=self.scale / q.shape[-1] ** 0.5)


# ---- broken: each fails exactly the checks named in its docstring -------------------------------------------


class AttendsToPadding(Attention):
    """Softmax attention that ignores the mask, so padded keys get weight: fails both padding checks."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v)  # (B, H, L, d)


class NaNUnderBf16(Attention):
    """Softmax attention after a hand-written normalisation of the queries whose variance E[x²] − E[x]² cancels
    catastrophically in bf16 around a large offset (negative variance -> NaN): fails the bf16 check."""

    def __init__(self, dim: int, heads: int, *, offset: float = 30.0) -> None:
        super().__init__(dim, heads)
        self.offset = offset

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        shifted = q + self.offset
        mean = shifted.mean(-1, keepdim=True)
        variance = shifted.square().mean(-1, keepdim=True) - mean.square()
        q = (shifted - mean) / variance.sqrt()  # (B, H, L, d)
        keep = None if mask is None else (mask | ~mask.any(-1, keepdim=True))[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)


class DisagreeingForms(KernelAttention):
    """The paper's definition scales queries by d^-1/2 before φ, the linear form forgot it: fails linear vs
    quadratic (every other check passes, since the linear form alone is a fine attention)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__(dim, heads, ScaledElu(1.0))

    def attend_quadratic(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        fq, fk = self.feature_maps(q * self.head_dim**-0.5, k, mask)  # (B, H, L, F) each
        return quadratic_attention(fq, fk, v, mask, self.eps)


class UnusedTemperature(Attention):
    """Softmax attention with a learned per-head temperature read through .detach(), so no gradient reaches it:
    fails both gradient checks (none arrives; finite differences see the output move)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__(dim, heads)
        self.temperature = nn.Parameter(torch.ones(heads))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        q = q * self.temperature.detach().view(-1, 1, 1)  # (B, H, L, d)
        keep = None if mask is None else (mask | ~mask.any(-1, keepdim=True))[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)


class _EluPlusOneWrongBackward(torch.autograd.Function):
    """elu(x) + 1 with the backward of x + 1 (slope 1 also where x < 0)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return F.elu(x) + 1.0

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


class WrongBackwardMap(FeatureMap):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return _EluPlusOneWrongBackward.apply(x)


class WrongBackward(KernelAttention):
    """A feature map with a hand-written backward that is wrong for negative inputs; both forms share it, so only
    finite differences see it: fails the finite-difference check."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__(dim, heads, WrongBackwardMap())


# ---- not attentions by the contract --------------------------------------------------------------------------


def a_function(dim: int, heads: int) -> nn.Module:
    return TemperedLinear(dim, heads)


class NotAModule:
    def __init__(self, dim: int, heads: int) -> None:
        self.dim = dim


class OtherNames(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x


class SwallowsOptions(nn.Module):
    def __init__(self, dim: int, heads: int, **options: Any) -> None:
        super().__init__()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x


class NoMask(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Abstract(Attention):
    """attend is not implemented."""


class NeedsRank(nn.Module):
    def __init__(self, dim: int, heads: int, rank: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.rank = rank

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.proj(x)


def install_entry_points(site: Path, dist: str, entries: dict[str, str]) -> None:
    """A minimal installed distribution in `site` (what pip writes): its dist-info with an entry_points.txt."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
