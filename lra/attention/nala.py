"""NaLaFormer: norm-aware linear attention, the query norm as a temperature (arXiv 2506.21137)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lra.attention.feature_maps import (
    NormAwareQueryPower,
    SignedPower,
    cosine_inhibit_key_map,
    cosine_inhibit_query_map,
    norm_aware_query_map,
    relu_split_map,
)
from lra.attention.kernel import KernelAttention

VARIANTS = ("relu_split", "cosine_inhibit")


class NaLaAttention(KernelAttention):
    """NaLaFormer norm-aware linear attention (arXiv 2506.21137): the query norm sets the power of φ_q."""

    name = "nala"

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        alpha: float = 3.0,
        beta: float = 0.5,
        variant: str = "relu_split",
        inhibit_scale: float = 20.0,
        learnable: bool = False,
        value_conv: bool = False,
        output_gate: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(dim, heads, eps=eps)
        if not alpha > 0:
            raise ValueError(f"nala: alpha must be > 0, got {alpha}")
        if not beta >= 0:
            raise ValueError(f"nala: beta must be >= 0, got {beta}")
        if not inhibit_scale > 0:
            raise ValueError(f"nala: inhibit_scale must be > 0, got {inhibit_scale}")
        if variant not in VARIANTS:
            raise ValueError(f"nala: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.inhibit_scale = inhibit_scale
        self.learnable = learnable
        if learnable:  # one α and one β per head
            self.alpha: Tensor | float = nn.Parameter(torch.full((heads,), float(alpha)))
            self.beta: Tensor | float = nn.Parameter(torch.full((heads,), float(beta)))
        else:
            self.alpha, self.beta = float(alpha), float(beta)
        self.value_conv = nn.Conv1d(dim, dim, 5, padding=2, groups=dim) if value_conv else None
        self.gate = nn.Linear(dim, dim) if output_gate else None
        self.gate_norm = nn.LayerNorm(dim) if output_gate else None

    def _head_params(self) -> tuple[Tensor | float, Tensor | float]:
        if isinstance(self.alpha, Tensor) and isinstance(self.beta, Tensor):
            return self.alpha.view(-1, 1, 1), self.beta.view(-1, 1, 1)  # (H, 1, 1) against (B, H, L, d)
        return self.alpha, self.beta

    def feature_maps(self, q: Tensor, k: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        alpha, beta = self._head_params()
        if self.variant == "relu_split":
            return norm_aware_query_map(q, alpha, beta, self.eps), relu_split_map(k, alpha)  # (B, H, L, 2d) each
        fq = cosine_inhibit_query_map(q, alpha, beta, self.inhibit_scale, self.eps)  # (B, H, L, 2d)
        fk = cosine_inhibit_key_map(k, alpha, self.inhibit_scale, self.eps)  # (B, H, L, 2d)
        return fq, fk

    def feature_blocks(self, q: Tensor, k: Tensor, mask: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
        if self.variant != "relu_split":
            return super().feature_blocks(q, k, mask)
        alpha, beta = self._head_params()
        q_blocks = NormAwareQueryPower.apply(q, alpha, beta, self.eps)  # 2 × (B, H, L, d), with the ½
        k_blocks = SignedPower.apply(k, alpha)  # 2 × (B, H, L, d)
        return list(q_blocks), list(k_blocks)

    def output(self, x: Tensor, y: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        y = self.merge_heads(y)  # (B, L, D)
        if self.value_conv is not None:
            v = self.merge_heads(v)  # (B, L, D)
            if mask is not None:  # zero the padding so it never leaks into real positions
                v = v.masked_fill(~mask[..., None], 0.0)
            y = y + self.value_conv(v.transpose(1, 2)).transpose(1, 2)  # (B, L, D)
        if self.gate is not None and self.gate_norm is not None:
            y = self.gate_norm(y) * F.silu(self.gate(x))  # (B, L, D)
        return self.out(y)
