"""Classic kernel linear attention with the elu+1 feature map."""

from __future__ import annotations

from lra.attention.feature_maps import EluFeatureMap
from lra.attention.kernel import KernelAttention


class LinearAttention(KernelAttention):
    """Linear attention with φ = elu + 1 (Katharopoulos et al., 2020, arXiv 2006.16236), non-causal."""

    name = "linear"

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6) -> None:
        super().__init__(dim, heads, EluFeatureMap(), eps=eps)
