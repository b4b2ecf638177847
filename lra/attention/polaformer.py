"""PolaFormer: polarity-aware linear attention with a learnable power (arXiv 2501.15061)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lra.attention.base import in_compute_dtype
from lra.attention.feature_maps import polarity_parts, relu_split_map
from lra.attention.kernel import KernelAttention
from lra.attention.ops import linear_attention, quadratic_attention


class PolaFormerAttention(KernelAttention):
    """Meng et al., 2025, "PolaFormer: Polarity-aware Linear Attention for Vision Transformers", arXiv 2501.15061.

    q·k = (q⁺·k⁺ + q⁻·k⁻) − (q⁺·k⁻ + q⁻·k⁺): the same-sign kernel weights the first half of the value
    channels, the opposite-sign kernel the second half, each normalised as linear attention; the output
    projection learns how to combine them. Every part passes through g(x) = x^p with a learnable
    channel-wise power p = 1 + α·sigmoid(θ) ∈ (1, 1 + α) per head and channel (θ = 0 at start).
    """

    name = "polaformer"

    def __init__(self, dim: int, heads: int, *, alpha: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__(dim, heads, eps=eps)
        if not alpha > 0:
            raise ValueError(f"polaformer: alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.power = nn.Parameter(torch.zeros(heads, 1, self.head_dim))  # θ, (H, 1, d) against (B, H, L, d)
        # Same-sign half first (the larger one for an odd head dim), then the opposite-sign half.
        self.value_split = (self.head_dim - self.head_dim // 2, self.head_dim // 2)

    def exponents(self, dtype: torch.dtype) -> Tensor:
        """The channel-wise powers p = 1 + α·sigmoid(θ), (H, 1, d)."""
        return 1.0 + self.alpha * torch.sigmoid(self.power.to(dtype))

    def feature_maps(self, q: Tensor, k: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The same-sign kernel: [q⁺^p, q⁻^p]·[k⁺^p, k⁻^p]; the opposite-sign one swaps the query halves."""
        p = self.exponents(q.dtype)
        return relu_split_map(q, p), relu_split_map(k, p)  # (B, H, L, 2d) each

    @in_compute_dtype
    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        p = self.exponents(q.dtype)  # (H, 1, d)
        q_pos, q_neg = polarity_parts(q, p)  # (B, H, L, d) each
        k_pos, k_neg = polarity_parts(k, p)  # (B, H, L, d) each
        v_same, v_opp = v.split(self.value_split, -1)  # (B, H, L, ⌈d/2⌉), (B, H, L, ⌊d/2⌋)
        out = linear_attention([q_pos, q_neg], [k_pos, k_neg], v_same, mask, self.eps)  # (B, H, L, ⌈d/2⌉)
        if self.value_split[1]:
            opp = linear_attention([q_neg, q_pos], [k_pos, k_neg], v_opp, mask, self.eps)  # (B, H, L, ⌊d/2⌋)
            out = torch.cat([out, opp], -1)  # (B, H, L, d)
        return out

    @in_compute_dtype
    def attend_quadratic(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """O(L²) reference: both kernels as (L, L) matrices, each normalised over its half of the values."""
        fq_same, fk = self.feature_maps(q, k, mask)  # (B, H, L, 2d) each
        fq_opp = relu_split_map(-q, self.exponents(q.dtype))  # [q⁻^p, q⁺^p], (B, H, L, 2d)
        v_same, v_opp = v.split(self.value_split, -1)
        out = quadratic_attention(fq_same, fk, v_same, mask, self.eps)  # (B, H, L, ⌈d/2⌉)
        if self.value_split[1]:
            out = torch.cat([out, quadratic_attention(fq_opp, fk, v_opp, mask, self.eps)], -1)  # (B, H, L, d)
        return out
