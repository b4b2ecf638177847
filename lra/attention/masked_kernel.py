"""Kernel attention whose feature maps see the key padding mask (for stabilisers and per-sequence positions)."""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from lra.attention.base import KernelAttention, LinearAttentionCore, compute_dtype


class MaskedKernelAttention(KernelAttention):
    """Kernel linear attention (Katharopoulos et al., 2020, arXiv 2006.16236) with mask-aware feature maps.

    ``KernelAttention`` builds φ_q, φ_k from q and k alone; some maps also need the mask: a stabiliser
    shared by the real keys only (Performer) or each sequence's own length (cosFormer). Subclasses
    supply ``masked_feature_maps`` (and optionally ``masked_feature_blocks``); ``linear_form`` and
    ``quadratic_form`` are the two forms of one kernel, for attentions that mix several kernels.
    """

    @abstractmethod
    def masked_feature_maps(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """q, k (B, H, L, d), mask (B, L) or None -> φ_q, φ_k (B, H, L, F), finite also at padded keys."""

    def masked_feature_blocks(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[list[Tensor], list[Tensor]]:
        """Blocks with Σ_b φ_qᵇ·φ_kᵇ = φ_q·φ_k (see ``KernelAttention.feature_blocks``); default: one block."""
        fq, fk = self.masked_feature_maps(q, k, mask)
        return [fq], [fk]

    def feature_maps(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return self.masked_feature_maps(q, k, None)  # every key real

    def feature_blocks(self, q: Tensor, k: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        return self.masked_feature_blocks(q, k, None)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        dtype = compute_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            fq_blocks, fk_blocks = self.masked_feature_blocks(q.to(dtype), k.to(dtype), mask)  # each (B, H, L, F_b)
            out = self.linear_form(fq_blocks, fk_blocks, v.to(dtype), mask)  # (B, H, L, d)
        return out.to(q.dtype)

    def attend_quadratic(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        dtype = compute_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            fq, fk = self.masked_feature_maps(q.to(dtype), k.to(dtype), mask)  # (B, H, L, F)
            out = self.quadratic_form(fq, fk, v.to(dtype), mask)  # (B, H, L, d)
        return out.to(q.dtype)

    def linear_form(self, fq_blocks: list[Tensor], fk_blocks: list[Tensor], v: Tensor, mask: Tensor | None) -> Tensor:
        """φ_q S / (φ_q·z + ε) over the valid keys, as ``KernelAttention.attend``; all inputs in one dtype."""
        key_mask, inv_count = self._valid_keys(mask, v.shape[-2], v.dtype)  # (B, 1, L, 1), (B, 1, 1, 1)
        v1 = F.pad(v, (0, 1), value=1.0)  # (B, H, L, e + 1): [v | 1]
        if key_mask is not None:
            v1 = v1 * key_mask  # padded keys contribute nothing
        return LinearAttentionCore.apply(v1, inv_count, self.eps, *fq_blocks, *fk_blocks)  # (B, H, L, e)

    def quadratic_form(self, fq: Tensor, fk: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """O(L²) reference of ``linear_form``: A_ij = φ_q(q_i)·φ_k(k_j) (padded keys -> 0), (A / Σ_j A_ij) V."""
        key_mask, inv_count = self._valid_keys(mask, v.shape[-2], v.dtype)  # (B, 1, L, 1), (B, 1, 1, 1)
        a = fq @ fk.transpose(-2, -1)  # (B, H, L, L)
        if key_mask is not None:
            a = a * key_mask.transpose(-2, -1)
        a = a * inv_count  # the linear form's scale, so that ε acts alike
        return (a @ v) / (a.sum(-1, keepdim=True) + self.eps)  # (B, H, L, e)
