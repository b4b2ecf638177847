"""cosFormer: ReLU features with a cos re-weighting over positions (arXiv 2202.08791)."""

from __future__ import annotations

from lra.attention.feature_maps import CosFormerFeatureMap
from lra.attention.kernel import KernelAttention


class CosFormerAttention(KernelAttention):
    """cosFormer attention (Qin et al., 2022, "cosFormer: Rethinking Softmax in Attention", arXiv 2202.08791).

    A_ij = relu(q_i)·relu(k_j) · cos(π/2 · (i − j) / M), written as the 2d-wide features
    φ(x_i) = [relu(x_i) cos θ_i, relu(x_i) sin θ_i] with θ_i = π/2 · i / M (cos·cos + sin·sin):
    a locality bias that keeps the linear form. M is each sequence's own length (``cos_angles``).
    """

    name = "cosformer"

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6) -> None:
        super().__init__(dim, heads, CosFormerFeatureMap(), eps=eps)
