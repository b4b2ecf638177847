"""Classic kernel linear attention with the elu+1 feature map."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lra.attention.base import KernelAttention


def elu_feature_map(x: Tensor) -> Tensor:
    """φ(x) = elu(x) + 1 > 0 (Katharopoulos et al., 2020, "Transformers are RNNs", eq. 7)."""
    return F.elu(x) + 1.0


class LinearAttention(KernelAttention):
    """Linear attention with φ = elu + 1 (Katharopoulos et al., 2020, arXiv 2006.16236), non-causal."""

    name = "linear"

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6) -> None:
        super().__init__(dim, heads, eps)

    def feature_maps(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return elu_feature_map(q), elu_feature_map(k)  # (B, H, L, d) each
