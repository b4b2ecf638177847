"""Exact softmax attention through torch's fused scaled_dot_product_attention."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lra.attention.base import Attention


class SoftmaxAttention(Attention):
    """Exact softmax attention (Vaswani et al., 2017, "Attention Is All You Need") with key padding.

    `dropout` is applied to the attention probabilities while training (protocol 2 uses 0.1).
    """

    name = "softmax"

    def __init__(self, dim: int, heads: int, *, dropout: float = 0.0) -> None:
        super().__init__(dim, heads)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"softmax: dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        dropout = self.dropout if self.training else 0.0
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, H, L, d)
        # A sequence with no real token gives all-masked rows, NaN in older torch releases; let it attend
        # to everything instead: its outputs are padding anyway and real sequences are unaffected.
        keep = mask | ~mask.any(-1, keepdim=True)  # (B, L)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :], dropout_p=dropout)
