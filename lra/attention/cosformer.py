"""cosFormer: ReLU features with a cos re-weighting over positions (arXiv 2202.08791)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lra.attention.masked_kernel import MaskedKernelAttention


def cos_angles(mask: Tensor | None, length: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """θ_i = (π/2) · i / M for the positions i = 1..L of each sequence, (B or 1, 1, L, 1).

    M is each sequence's extent, the position of its last real token: the number of real tokens for
    the (usual) right padding, so an output does not depend on how much padding follows. Real
    positions then satisfy 1 ≤ i, j ≤ M, so |θ_i − θ_j| < π/2 and every weight cos(θ_i − θ_j) > 0,
    also with holes in the mask. Padding after the last real token takes position M (its outputs are
    padding anyway; this keeps their weights positive too). Without a mask M = L, as in the paper.
    """
    positions = torch.arange(1, length + 1, device=device, dtype=dtype)  # (L,)
    if mask is None:
        return ((math.pi / 2 / length) * positions)[None, None, :, None]  # (1, 1, L, 1)
    extent = (mask.to(dtype) * positions).amax(-1, keepdim=True).clamp_min(1.0)  # (B, 1)
    return ((math.pi / 2) * torch.minimum(positions, extent) / extent)[:, None, :, None]  # (B, 1, L, 1)


class CosFormerAttention(MaskedKernelAttention):
    """cosFormer attention (Qin et al., 2022, "cosFormer: Rethinking Softmax in Attention", arXiv 2202.08791).

    A_ij = relu(q_i)·relu(k_j) · cos(π/2 · (i − j) / M), written as the 2d-wide features
    φ(x_i) = [relu(x_i) cos θ_i, relu(x_i) sin θ_i] with θ_i = π/2 · i / M (cos·cos + sin·sin):
    a locality bias that keeps the linear form. M is each sequence's own length (``cos_angles``).
    """

    name = "cosformer"

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6) -> None:
        super().__init__(dim, heads, eps)

    def masked_feature_blocks(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[list[Tensor], list[Tensor]]:
        theta = cos_angles(mask, q.shape[-2], q.device, q.dtype)  # (B, 1, L, 1)
        cos, sin = theta.cos(), theta.sin()
        rq, rk = F.relu(q), F.relu(k)  # (B, H, L, d)
        return [rq * cos, rq * sin], [rk * cos, rk * sin]  # 2 × (B, H, L, d) each

    def masked_feature_maps(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        fq_blocks, fk_blocks = self.masked_feature_blocks(q, k, mask)
        return torch.cat(fq_blocks, -1), torch.cat(fk_blocks, -1)  # (B, H, L, 2d) each
