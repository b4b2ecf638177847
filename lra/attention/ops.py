"""Kernel attention ops: the linear-time form with a hand-written backward, and its naive O(L²) reference.

Both compute out_i = Σ_j A_ij v_j / (Σ_j A_ij + ε) with A_ij = φ_q(q_i)·φ_k(k_j) / n over the n valid
keys (padded keys get A_ij = 0). Dividing by n keeps the sums small; it cancels in the ratio up to ε, and
both forms apply it, so ε acts alike in both (Katharopoulos et al., 2020, arXiv 2006.16236, non-causal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def valid_keys(mask: Tensor | None, n: int, dtype: torch.dtype) -> tuple[Tensor | None, Tensor | float]:
    """The key mask as (B, 1, L, 1) floats (None: all n keys real) and 1 / (number of valid keys), (B, 1, 1, 1)."""
    if mask is None:
        return None, 1.0 / n
    key_mask = mask.to(dtype)[:, None, :, None]  # (B, 1, L, 1)
    return key_mask, key_mask.sum(-2, keepdim=True).clamp_min(1.0).reciprocal()  # (B, 1, 1, 1)


def linear_attention(
    fq_blocks: Sequence[Tensor], fk_blocks: Sequence[Tensor], v: Tensor, mask: Tensor | None, eps: float
) -> Tensor:
    """φ_q S / (φ_q·z + ε) with [S | z] = Σ_j φ_k(k_j)ᵀ [v_j | 1] / n over the valid keys, in O(L).

    fq_blocks, fk_blocks: the features split into blocks, each (B, H, L, F_b), with Σ_b φ_qᵇ·φ_kᵇ = φ_q·φ_k
    (one block each is the plain case); v (B, H, L, e); mask (B, L) True at real tokens, or None. All
    tensors in one dtype. Returns (B, H, L, e); ``quadratic_attention`` is its reference.
    """
    if len(fq_blocks) != len(fk_blocks) or not fq_blocks:
        raise ValueError(
            f"linear_attention needs as many query as key feature blocks (at least one), "
            f"got {len(fq_blocks)} and {len(fk_blocks)}"
        )
    key_mask, inv_count = valid_keys(mask, v.shape[-2], v.dtype)  # (B, 1, L, 1), (B, 1, 1, 1)
    # One matmul per block gives both reductions: [S | z] = φ_kᵀ [v | 1], with padded keys' rows zeroed,
    # then divided by the number of valid keys on the small state.
    v1 = F.pad(v, (0, 1), value=1.0)  # (B, H, L, e + 1): [v | 1]
    if key_mask is not None:
        v1 = v1 * key_mask  # padded keys contribute nothing
    return LinearAttentionCore.apply(v1, inv_count, eps, *fq_blocks, *fk_blocks)  # (B, H, L, e)


def quadratic_attention(fq: Tensor, fk: Tensor, v: Tensor, mask: Tensor | None, eps: float) -> Tensor:
    """Naive O(L²) reference of ``linear_attention``: A = φ_q φ_kᵀ / n (padded keys -> 0), (A V) / (A 1 + ε).

    fq, fk (B, H, L, F), v (B, H, L, e), mask (B, L) or None -> (B, H, L, e). For tests only.
    """
    key_mask, inv_count = valid_keys(mask, v.shape[-2], v.dtype)  # (B, 1, L, 1), (B, 1, 1, 1)
    a = fq @ fk.transpose(-2, -1)  # (B, H, L, L)
    if key_mask is not None:
        a = a * key_mask.transpose(-2, -1)  # padded keys -> 0
    a = a * inv_count  # the linear form's scale, so that ε acts alike
    return (a @ v) / (a.sum(-1, keepdim=True) + eps)  # (B, H, L, e)


def split_linear_attention(
    numerator_q: Sequence[Tensor],
    numerator_k: Sequence[Tensor],
    fq_blocks: Sequence[Tensor],
    fk_blocks: Sequence[Tensor],
    v: Tensor,
    mask: Tensor | None,
    eps: float,
) -> Tensor:
    """Σ_b ψ_qᵇ Sᵇ / (φ_q·z + ε): the numerator from its own features ψ (e.g. rotated ones), the normaliser from φ.

    Sᵇ = Σ_j ψ_kᵇ(k_j)ᵀ v_j / n and z = Σ_j φ_k(k_j) / n over the valid keys, in O(L) with plain autograd.
    NaLaFormer's released block applies rotary positions to the numerator's features only (arXiv 2506.21137).
    All blocks (B, H, L, F_b), v (B, H, L, e), mask (B, L) or None -> (B, H, L, e).
    """
    key_mask, inv_count = valid_keys(mask, v.shape[-2], v.dtype)  # (B, 1, L, 1), (B, 1, 1, 1)
    values = v if key_mask is None else v * key_mask  # padded keys contribute nothing
    numerator = sum(
        q @ ((k.transpose(-2, -1) @ values) * inv_count) for q, k in zip(numerator_q, numerator_k, strict=True)
    )
    ones = torch.ones_like(v[..., :1]) if key_mask is None else key_mask.expand(*v.shape[:-1], 1)  # (B, H, L, 1)
    denominator = sum(q @ ((k.transpose(-2, -1) @ ones) * inv_count) for q, k in zip(fq_blocks, fk_blocks, strict=True))
    return numerator / (denominator + eps)  # (B, H, L, e)


def split_quadratic_attention(
    numerator_q: Tensor, numerator_k: Tensor, fq: Tensor, fk: Tensor, v: Tensor, mask: Tensor | None, eps: float
) -> Tensor:
    """Naive O(L²) reference of ``split_linear_attention``: (ψ_q ψ_kᵀ V) / (φ_q φ_kᵀ 1 + ε), both / n. Tests only."""
    key_mask, inv_count = valid_keys(mask, v.shape[-2], v.dtype)  # (B, 1, L, 1), (B, 1, 1, 1)
    weights = numerator_q @ numerator_k.transpose(-2, -1) * inv_count  # (B, H, L, L)
    normaliser = fq @ fk.transpose(-2, -1) * inv_count  # (B, H, L, L)
    if key_mask is not None:
        weights = weights * key_mask.transpose(-2, -1)  # padded keys -> 0
        normaliser = normaliser * key_mask.transpose(-2, -1)
    return (weights @ v) / (normaliser.sum(-1, keepdim=True) + eps)  # (B, H, L, e)


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
