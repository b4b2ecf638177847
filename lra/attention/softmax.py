"""Exact softmax attention through torch's fused scaled_dot_product_attention."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lra.attention.base import Attention


class SoftmaxAttention(Attention):
    """Exact softmax attention (Vaswani et al., 2017, "Attention Is All You Need") with key padding."""

    name = "softmax"

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v)  # (B, H, L, d)
        # A sequence with no real token gives all-masked rows, NaN in older torch releases; let it attend
        # to everything instead: its outputs are padding anyway and real sequences are unaffected.
        keep = mask | ~mask.any(-1, keepdim=True)  # (B, L)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])  # (B, H, L, d)
