"""PolaFormer: polarity-aware linear attention with a learnable power (arXiv 2501.15061)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lra.attention.base import compute_dtype
from lra.attention.masked_kernel import MaskedKernelAttention
from lra.attention.nala import abs_pow, relu_split_map


def polarity_parts(x: Tensor, p: Tensor | float) -> tuple[Tensor, Tensor]:
    """(relu(x)^p, relu(−x)^p), each like x: x = x⁺ − x⁻ split by sign, then the element-wise power."""
    magnitude = abs_pow(x, p)  # (..., d), exactly 0 at x = 0
    return magnitude * (x > 0), magnitude * (x < 0)


class PolaFormerAttention(MaskedKernelAttention):
    """Meng et al., 2025, "PolaFormer: Polarity-aware Linear Attention for Vision Transformers", arXiv 2501.15061.

    q·k = (q⁺·k⁺ + q⁻·k⁻) − (q⁺·k⁻ + q⁻·k⁺): the same-sign kernel weights the first half of the value
    channels, the opposite-sign kernel the second half, each normalised as linear attention; the output
    projection learns how to combine them. Every part passes through g(x) = x^p with a learnable
    channel-wise power p = 1 + α·sigmoid(θ) ∈ (1, 1 + α) per head and channel (θ = 0 at start).
    """

    name = "polaformer"

    def __init__(self, dim: int, heads: int, *, alpha: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__(dim, heads, eps)
        if not alpha > 0:
            raise ValueError(f"polaformer: alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.power = nn.Parameter(torch.zeros(heads, 1, self.head_dim))  # θ, (H, 1, d) against (B, H, L, d)
        # Same-sign half first (the larger one for an odd head dim), then the opposite-sign half.
        self.value_split = (self.head_dim - self.head_dim // 2, self.head_dim // 2)

    def exponents(self, dtype: torch.dtype) -> Tensor:
        """The channel-wise powers p = 1 + α·sigmoid(θ), (H, 1, d)."""
        return 1.0 + self.alpha * torch.sigmoid(self.power.to(dtype))

    def masked_feature_maps(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """The same-sign kernel: [q⁺^p, q⁻^p]·[k⁺^p, k⁻^p]; the opposite-sign one swaps the query halves."""
        p = self.exponents(q.dtype)
        return relu_split_map(q, p), relu_split_map(k, p)  # (B, H, L, 2d) each

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        dtype = compute_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            p = self.exponents(dtype)  # (H, 1, d)
            q_pos, q_neg = polarity_parts(q.to(dtype), p)  # (B, H, L, d) each
            k_pos, k_neg = polarity_parts(k.to(dtype), p)  # (B, H, L, d) each
            v_same, v_opp = v.to(dtype).split(self.value_split, -1)  # (B, H, L, ⌈d/2⌉), (B, H, L, ⌊d/2⌋)
            out = self.linear_form([q_pos, q_neg], [k_pos, k_neg], v_same, mask)  # (B, H, L, ⌈d/2⌉)
            if self.value_split[1]:
                opp = self.linear_form([q_neg, q_pos], [k_pos, k_neg], v_opp, mask)  # (B, H, L, ⌊d/2⌋)
                out = torch.cat([out, opp], -1)  # (B, H, L, d)
        return out.to(q.dtype)

    def attend_quadratic(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """O(L²) reference: both kernels as (L, L) matrices, each normalised over its half of the values."""
        dtype = compute_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            p = self.exponents(dtype)
            fq_same, fk = self.masked_feature_maps(q.to(dtype), k.to(dtype), mask)  # (B, H, L, 2d) each
            fq_opp = relu_split_map(-q.to(dtype), p)  # [q⁻^p, q⁺^p], (B, H, L, 2d)
            v_same, v_opp = v.to(dtype).split(self.value_split, -1)
            out = self.quadratic_form(fq_same, fk, v_same, mask)  # (B, H, L, ⌈d/2⌉)
            if self.value_split[1]:
                out = torch.cat([out, self.quadratic_form(fq_opp, fk, v_opp, mask)], -1)  # (B, H, L, d)
        return out.to(q.dtype)
