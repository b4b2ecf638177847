"""The attention contract: multi-head self-attention over (B, L, D) with a key padding mask."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def compute_dtype(t: Tensor) -> torch.dtype:
    """float32 for half-precision inputs (bf16/fp16), the input's own dtype for float32/float64."""
    return torch.promote_types(t.dtype, torch.float32)


class Attention(nn.Module, ABC):
    """Multi-head self-attention (Vaswani et al., 2017, "Attention Is All You Need"): the shared contract.

    ``forward(x, mask)`` projects x (B, L, D) to q, k, v (B, H, L, d), lets the subclass mix them in
    ``attend`` and merges the heads back through ``output``. ``mask`` (B, L) is True at real tokens;
    padded keys contribute nothing and real outputs never depend on padded positions.
    """

    name: ClassVar[str]  # the registry name, also used in error messages

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim <= 0 or heads <= 0 or dim % heads != 0:
            raise ValueError(
                f"{self.name}: dim and heads must be positive with dim divisible by heads, got dim={dim}, heads={heads}"
            )
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        q, k, v = self.split_heads(self.q(x)), self.split_heads(self.k(x)), self.split_heads(self.v(x))
        y = self.attend(q, k, v, mask)  # (B, H, L, d)
        return self.output(x, y, v, mask)  # (B, L, D)

    @abstractmethod
    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Mix values: q, k, v (B, H, L, d), mask (B, L) or None -> (B, H, L, d)."""

    def output(self, x: Tensor, y: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Merge heads and project: y (B, H, L, d) -> (B, L, D). Hook for extras on the output path."""
        return self.out(self.merge_heads(y))

    def split_heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        # Contiguous, so that element-wise work and matmuls downstream need no further copies.
        return t.view(b, n, self.heads, self.head_dim).transpose(1, 2).contiguous()  # (B, H, L, d)

    @staticmethod
    def merge_heads(y: Tensor) -> Tensor:
        b, h, n, d = y.shape
        return y.transpose(1, 2).reshape(b, n, h * d)  # (B, L, D)


class LinearAttentionCore(torch.autograd.Function):
    """out = N / (D + ε) with [N | D] = Σ_b φ_qᵇ (c φ_kᵇᵀ [v | 1]), the linear-time form with a hand-written backward.

    v1 = [v | 1] (B, H, L, e + 1) with padded keys' rows zeroed; c (float or (B, 1, 1, 1)) is 1 / the number
    of valid keys; ``blocks`` are φ_q¹..φ_qⁿ then φ_k¹..φ_kⁿ, each (B, H, L, F_b). Compared with autograd
    it accumulates the blocks in place and computes every gradient as a tall (L, ·) matmul, so there are
    no wide (F, L) products, no transposed gradients and fewer fresh (B, H, L, ·) buffers.
    """

    @staticmethod
    def forward(ctx: Any, v1: Tensor, scale: Tensor | float, eps: float, *blocks: Tensor) -> Tensor:
        n = len(blocks) // 2
        fqs, fks = blocks[:n], blocks[n:]
        states = [(fk.transpose(-2, -1) @ v1).mul_(scale) for fk in fks]  # each (B, H, F_b, e + 1): [S | z]
        numden = fqs[0] @ states[0]  # (B, H, L, e + 1): [φ_q S | φ_q·z]
        for fq, state in zip(fqs[1:], states[1:], strict=True):
            _add_matmul_(numden, fq, state)
        inv_den = (numden[..., -1:] + eps).reciprocal()  # (B, H, L, 1)
        out = numden[..., :-1] * inv_den  # (B, H, L, e)
        ctx.save_for_backward(v1, out, inv_den, *blocks, *states)
        ctx.n, ctx.scale = n, scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        with torch.autocast(grad.device.type, enabled=False):  # like the forward, even if called under autocast
            return LinearAttentionCore._backward(ctx, grad)

    @staticmethod
    def _backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        v1, out, inv_den, *saved = ctx.saved_tensors
        n = ctx.n
        fqs, fks, states = saved[:n], saved[n : 2 * n], saved[2 * n :]
        grad_numden = grad.new_empty((*v1.shape[:-2], grad.shape[-2], v1.shape[-1]))  # (B, H, L, e + 1)
        torch.mul(grad, inv_den, out=grad_numden[..., :-1])  # d out / d N = 1 / (D + ε)
        # d out / d D = −N / (D + ε)² = −out / (D + ε)
        torch.mul((grad * out).sum(-1, keepdim=True), inv_den, out=grad_numden[..., -1:]).neg_()
        grad_fqs = [grad_numden @ state.transpose(-2, -1) for state in states]  # each (B, H, L, F_b)
        grad_states = [(fq.transpose(-2, -1) @ grad_numden).mul_(ctx.scale) for fq in fqs]  # (B, H, F_b, e + 1)
        grad_fks = [v1 @ g.transpose(-2, -1) for g in grad_states]  # each (B, H, L, F_b)
        grad_v1 = None
        if ctx.needs_input_grad[0]:
            grad_v1 = fks[0] @ grad_states[0]  # (B, H, L, e + 1)
            for fk, g in zip(fks[1:], grad_states[1:], strict=True):
                _add_matmul_(grad_v1, fk, g)
        return grad_v1, None, None, *grad_fqs, *grad_fks


def _add_matmul_(out: Tensor, a: Tensor, b: Tensor) -> None:
    """out += a @ b in place for batched (..., m, k) @ (..., k, n); ``out`` is a fresh contiguous tensor."""
    out.view(-1, *out.shape[-2:]).baddbmm_(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))


class KernelAttention(Attention):
    """Kernel linear attention (Katharopoulos et al., 2020, "Transformers are RNNs"), non-causal.

    out_i = φ_q(q_i) S / (φ_q(q_i)·z + ε) with S = mean_j φ_k(k_j)ᵀ v_j and z = mean_j φ_k(k_j) over
    the valid keys (the mean instead of the sum keeps the range small; the ratio is unchanged up to ε).
    Subclasses supply the feature maps; feature maps and reductions run in float32 even under autocast.
    """

    def __init__(self, dim: int, heads: int, eps: float) -> None:
        super().__init__(dim, heads)
        if eps <= 0:
            raise ValueError(f"{self.name}: eps must be > 0, got {eps}")
        self.eps = eps

    @abstractmethod
    def feature_maps(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """q, k (B, H, L, d) -> φ_q(q), φ_k(k) (B, H, L, F), both non-negative (the reference maps)."""

    def feature_blocks(self, q: Tensor, k: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Blocks [φ_q¹, φ_q², ...], [φ_k¹, φ_k², ...] with Σ_b φ_qᵇ·φ_kᵇ = φ_q·φ_k, for the linear form.

        The default is the reference maps as single blocks; a subclass may override this with a faster
        equivalent (blocks avoid concatenating features into one strided tensor).
        """
        fq, fk = self.feature_maps(q, k)
        return [fq], [fk]

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        dtype = compute_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            fq_blocks, fk_blocks = self.feature_blocks(q.to(dtype), k.to(dtype))  # each (B, H, L, F_b)
            # One matmul per block gives both reductions: [S | z] = φ_kᵀ [v | 1], with padded keys' rows
            # zeroed, then divided by the number of valid keys on the small state.
            key_mask, inv_count = self._valid_keys(mask, v.shape[-2], dtype)  # (B, 1, L, 1), (B, 1, 1, 1)
            v1 = F.pad(v.to(dtype), (0, 1), value=1.0)  # (B, H, L, d + 1)
            if key_mask is not None:
                v1 = v1 * key_mask
            out = LinearAttentionCore.apply(v1, inv_count, self.eps, *fq_blocks, *fk_blocks)  # (B, H, L, d)
        return out.to(q.dtype)

    def attend_quadratic(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """O(L²) reference: A_ij = φ_q(q_i)·φ_k(k_j) (padded keys -> 0), out = (A / Σ_j A_ij) V (tests only)."""
        dtype = compute_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            fq, fk = self.feature_maps(q.to(dtype), k.to(dtype))  # (B, H, L, F)
            key_mask, inv_count = self._valid_keys(mask, v.shape[-2], dtype)  # (B, 1, L, 1), (B, 1, 1, 1)
            a = fq @ fk.transpose(-2, -1)  # (B, H, L, L)
            if key_mask is not None:
                a = a * key_mask.transpose(-2, -1)  # padded keys -> 0
            a = a * inv_count  # the same scale as the linear form's, so that ε acts alike
            out = (a @ v.to(dtype)) / (a.sum(-1, keepdim=True) + self.eps)  # (B, H, L, d)
        return out.to(q.dtype)

    @staticmethod
    def _valid_keys(mask: Tensor | None, n: int, dtype: torch.dtype) -> tuple[Tensor | None, Tensor | float]:
        """The key mask as (B, 1, L, 1) floats (None: all keys real) and 1 / (number of valid keys)."""
        if mask is None:
            return None, 1.0 / n
        key_mask = mask.to(dtype)[:, None, :, None]  # (B, 1, L, 1)
        return key_mask, key_mask.sum(-2, keepdim=True).clamp_min(1.0).reciprocal()  # (B, 1, 1, 1)
