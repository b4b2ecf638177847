"""Hedgehog: linear attention with a learnable "spiky" feature map trained to mimic softmax attention."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lra.attention.base import KernelAttention


class HedgehogFeatureMap(nn.Module):
    """φ(x) = [softmax(Wx + b), softmax(−(Wx + b))] per head, W = I and b = 0 at init (Hedgehog, arXiv 2402.04347).

    Each half is a softmax over the feature dimension, so φ is positive and sums to 2; the learnable W
    lets training make the map as spiky (low-entropy) as softmax attention.
    """

    def __init__(self, heads: int, head_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(head_dim).repeat(heads, 1, 1))  # (H, d, d), acting as x @ W
        self.bias = nn.Parameter(torch.zeros(heads, 1, head_dim))  # (H, 1, d)

    def blocks(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, H, L, d) -> softmax(Wx + b), softmax(−(Wx + b)), each (B, H, L, d)."""
        y = x @ self.weight.to(x.dtype) + self.bias.to(x.dtype)  # (B, H, L, d)
        return y.softmax(-1), (-y).softmax(-1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(self.blocks(x), dim=-1)  # (B, H, L, 2d)


class HedgehogAttention(KernelAttention):
    """The Hedgehog & the Porcupine: Expressive Linear Attentions with Softmax Mimicry (arXiv 2402.04347)."""

    name = "hedgehog"

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6) -> None:
        super().__init__(dim, heads, eps)
        # Separate maps for queries and keys, as in the authors' code (mlp_q, mlp_k).
        self.feature_q = HedgehogFeatureMap(heads, self.head_dim)
        self.feature_k = HedgehogFeatureMap(heads, self.head_dim)

    def feature_maps(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return self.feature_q(q), self.feature_k(k)  # (B, H, L, 2d) each

    def feature_blocks(self, q: Tensor, k: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        # The two softmax halves as separate blocks: the same scores without concatenating.
        return list(self.feature_q.blocks(q)), list(self.feature_k.blocks(k))
