"""NaLaFormer: norm-aware linear attention, the query norm as a temperature (arXiv 2506.21137).

`nala` is the attention itself; each part of the authors' released block can be switched on (rotary positions on
the numerator's features, the depthwise value convolution "LePE", the output LayerNorm with or without a SiLU
gate), and `nala_released` is the released block with all three.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lra.attention.base import in_compute_dtype
from lra.attention.feature_maps import (
    NormAwareQueryPower,
    SignedPower,
    cosine_inhibit_key_map,
    cosine_inhibit_query_map,
    norm_aware_query_map,
    relu_split_map,
    rotary,
)
from lra.attention.kernel import KernelAttention
from lra.attention.ops import split_linear_attention, split_quadratic_attention

VARIANTS = ("relu_split", "cosine_inhibit")


class NaLaAttention(KernelAttention):
    """NaLaFormer norm-aware linear attention (arXiv 2506.21137): the query norm sets the power of φ_q.

    Options from the released block: `rope` rotates the numerator's features by position (each head_dim-wide
    chunk, RoFormer's rotation) while the normaliser keeps the plain ones; `value_conv` adds a depthwise
    convolution (kernel 5) of the values to the output; `output_norm` puts a LayerNorm on the attention output,
    and `output_gate` multiplies that by SiLU of a fourth projection of the input (the gate implies the norm).
    """

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
        rope: bool = False,
        value_conv: bool = False,
        output_norm: bool = False,
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
        self.rope = rope
        self.value_conv = nn.Conv1d(dim, dim, 5, padding=2, groups=dim) if value_conv else None
        self.output_norm = nn.LayerNorm(dim) if output_norm or output_gate else None
        self.gate = nn.Linear(dim, dim) if output_gate else None

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

    def rotate(self, features: Tensor) -> Tensor:
        """Rotary positions on each head_dim-wide chunk of the features (B, H, L, F): the same rotation for the
        blocks of ``feature_blocks`` and the reference maps of ``feature_maps``, so both forms agree."""
        return torch.cat([rotary(chunk) for chunk in features.split(self.head_dim, dim=-1)], dim=-1)

    @in_compute_dtype
    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        if not self.rope:
            return super().attend(q, k, v, mask)
        fq_blocks, fk_blocks = self.feature_blocks(q, k, mask)  # each (B, H, L, F_b)
        rotated_q, rotated_k = [self.rotate(b) for b in fq_blocks], [self.rotate(b) for b in fk_blocks]
        return split_linear_attention(rotated_q, rotated_k, fq_blocks, fk_blocks, v, mask, self.eps)  # (B, H, L, d)

    @in_compute_dtype
    def attend_quadratic(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        if not self.rope:
            return super().attend_quadratic(q, k, v, mask)
        fq, fk = self.feature_maps(q, k, mask)  # (B, H, L, F) each
        return split_quadratic_attention(self.rotate(fq), self.rotate(fk), fq, fk, v, mask, self.eps)

    def output(self, x: Tensor, y: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        y = self.merge_heads(y)  # (B, L, D)
        if self.value_conv is not None:
            v = self.merge_heads(v)  # (B, L, D)
            if mask is not None:  # zero the padding so it never leaks into real positions
                v = v.masked_fill(~mask[..., None], 0.0)
            y = y + self.value_conv(v.transpose(1, 2)).transpose(1, 2)  # (B, L, D)
        if self.output_norm is not None:
            y = self.output_norm(y)  # (B, L, D)
        if self.gate is not None:
            y = y * F.silu(self.gate(x))  # (B, L, D)
        return self.out(y)


class NaLaReleasedAttention(NaLaAttention):
    """NaLaFormer's released block (arXiv 2506.21137): norm-aware features with rotary numerator positions,
    the value convolution (LePE) and the SiLU-gated output LayerNorm, all on."""

    name = "nala_released"

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
        rope: bool = True,
        value_conv: bool = True,
        output_norm: bool = True,
        output_gate: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(
            dim,
            heads,
            alpha=alpha,
            beta=beta,
            variant=variant,
            inhibit_scale=inhibit_scale,
            learnable=learnable,
            rope=rope,
            value_conv=value_conv,
            output_norm=output_norm,
            output_gate=output_gate,
            eps=eps,
        )
