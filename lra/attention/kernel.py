"""Kernel attention: softmax(q·k) replaced by φ_q(q)·φ_k(k), computed in linear time by ``ops.linear_attention``."""

from __future__ import annotations

from torch import Tensor

from lra.attention.base import Attention, in_compute_dtype
from lra.attention.feature_maps import FeatureMap
from lra.attention.ops import linear_attention, quadratic_attention


class KernelAttention(Attention):
    """Kernel linear attention (Katharopoulos et al., 2020, "Transformers are RNNs", arXiv 2006.16236), non-causal.

    out_i = φ_q(q_i) S / (φ_q(q_i)·z + ε) with S = mean_j φ_k(k_j)ᵀ v_j and z = mean_j φ_k(k_j) over
    the valid keys (the mean instead of the sum keeps the range small; the ratio is unchanged up to ε).
    The maps are ``feature_map`` (queries, and keys too unless ``key_feature_map`` is given); a subclass
    whose maps share parameters or couple queries with keys overrides ``feature_maps`` (and optionally
    ``feature_blocks``) instead. Feature maps and reductions run in float32 even under autocast.
    """

    name = "kernel"

    def __init__(
        self,
        dim: int,
        heads: int,
        feature_map: FeatureMap | None = None,
        key_feature_map: FeatureMap | None = None,
        *,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(dim, heads)
        if eps <= 0:
            raise ValueError(f"{self.name}: eps must be > 0, got {eps}")
        self.eps = eps
        self.feature_q = feature_map
        self.feature_k = key_feature_map if key_feature_map is not None else feature_map

    def feature_maps(self, q: Tensor, k: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """q, k (B, H, L, d), mask (B, L) or None -> φ_q(q), φ_k(k) (B, H, L, F), finite also at padded keys.

        The reference maps, which ``attend_quadratic`` uses.
        """
        if self.feature_q is None or self.feature_k is None:
            raise TypeError(f"{self.name}: a kernel attention needs a feature_map or a feature_maps method")
        return self.feature_q(q, mask), self.feature_k(k, mask)

    def feature_blocks(self, q: Tensor, k: Tensor, mask: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """Blocks [φ_q¹, φ_q², ...], [φ_k¹, φ_k², ...] with Σ_b φ_qᵇ·φ_kᵇ = φ_q·φ_k, which ``attend`` uses.

        The feature-map modules' own blocks; without modules, ``feature_maps`` as single blocks. A subclass
        may override this with a faster equivalent.
        """
        if self.feature_q is None or self.feature_k is None:
            fq, fk = self.feature_maps(q, k, mask)  # (B, H, L, F) each
            return [fq], [fk]
        return self.feature_q.blocks(q, mask), self.feature_k.blocks(k, mask)

    @in_compute_dtype
    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        fq_blocks, fk_blocks = self.feature_blocks(q, k, mask)  # each (B, H, L, F_b)
        return linear_attention(fq_blocks, fk_blocks, v, mask, self.eps)  # (B, H, L, d)

    @in_compute_dtype
    def attend_quadratic(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """O(L²) reference of ``attend`` from the reference maps: (A / Σ_j A_ij) V, A_ij = φ_q(q_i)·φ_k(k_j)."""
        fq, fk = self.feature_maps(q, k, mask)  # (B, H, L, F) each
        return quadratic_attention(fq, fk, v, mask, self.eps)  # (B, H, L, d)
