"""Hedgehog: linear attention with a learnable "spiky" feature map trained to mimic softmax attention."""

from __future__ import annotations

from lra.attention.feature_maps import HedgehogFeatureMap
from lra.attention.kernel import KernelAttention


class HedgehogAttention(KernelAttention):
    """The Hedgehog & the Porcupine: Expressive Linear Attentions with Softmax Mimicry (arXiv 2402.04347)."""

    name = "hedgehog"

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6) -> None:
        super().__init__(dim, heads, eps=eps)
        # Separate maps for queries and keys, as in the authors' code (mlp_q, mlp_k); their two softmax
        # halves are separate blocks of the linear form: the same scores without concatenating.
        self.feature_q = HedgehogFeatureMap(heads, self.head_dim)
        self.feature_k = HedgehogFeatureMap(heads, self.head_dim)
