"""NaLaFormer: norm-aware linear attention (arXiv 2506.21137), as in shared/reference/nalaformer.md."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lra.attention.base import KernelAttention

VARIANTS = ("relu_split", "cosine_inhibit")


def norm_aware_power(q: Tensor, alpha: Tensor | float, beta: Tensor | float, eps: float) -> tuple[Tensor, Tensor]:
    """The guarded query norm m = max(‖q‖, ε) and the exponent p = α(β + tanh ‖q‖), both (..., 1).

    NaLaFormer (arXiv 2506.21137): the query norm acts as a temperature through the power p applied
    to the direction q̂ = q / m.
    """
    n = torch.linalg.vector_norm(q, dim=-1, keepdim=True)  # (..., 1)
    return n.clamp_min(eps), alpha * (beta + torch.tanh(n))


def abs_pow(x: Tensor, p: Tensor | float) -> Tensor:
    """|x|^p, exactly 0 at x = 0 with finite gradients there for every p > 0 (zeros use a dummy base 1)."""
    nonzero = x != 0
    return torch.where(nonzero, torch.where(nonzero, x.abs(), 1.0).pow(p), 0.0)


def relu_split_map(x: Tensor, p: Tensor | float) -> Tensor:
    """[relu(x)^p, relu(−x)^p] (..., 2d): NaLaFormer's released feature map (arXiv 2506.21137).

    Only same-sign coordinate pairs of φ_q and φ_k interact and every entry is ≥ 0.
    """
    signs = torch.stack([x > 0, x < 0], dim=-2)  # (..., 2, d)
    return (abs_pow(x, p).unsqueeze(-2) * signs).flatten(-2)  # (..., 2d)


def _signed_power(x: Tensor, p: Tensor | float, log_scale: Tensor | None) -> tuple[Tensor, ...]:
    """ψ = e^s (|x|^p, sign(x)|x|^p) and what the backward needs: (magnitude, signed, clamped |x|, log|x|).

    |x| is clamped to the smallest normal float inside powers and logs, so zeros map to exactly 0 with
    zero gradient for every p > 0; log|x| is only computed when p or s is a tensor.
    """
    abs_x = x.abs()
    clamped = abs_x.clamp_min(torch.finfo(x.dtype).tiny)  # (..., d)
    if isinstance(p, Tensor) or log_scale is not None:
        log_abs = clamped.log()
        exponent = log_abs * (p - 1.0)
        if log_scale is not None:
            exponent += log_scale  # (faster than a broadcasting addcmul)
        r = exponent.exp_()  # |x|^(p−1) e^s
    else:
        log_abs = None
        r = clamped.pow(p - 1.0)  # |x|^(p−1)
    magnitude = abs_x.mul_(r)  # |x|^p e^s, exactly 0 at x = 0 (in place: fewer fresh buffers)
    signed = r.mul_(x)  # sign(x) |x|^p e^s
    return magnitude, signed, clamped, log_abs


def _signed_power_grad_x(
    grad_magnitude: Tensor, grad_signed: Tensor, magnitude: Tensor, signed: Tensor, clamped: Tensor, p: Tensor | float
) -> Tensor:
    """dL/dx for ψ = ``_signed_power``: d|x|^p/dx = p sign(x)|x|^p / |x|, d(sign(x)|x|^p)/dx = p |x|^p / |x|."""
    return (grad_magnitude * signed).addcmul_(grad_signed, magnitude).div_(clamped).mul_(p)


def _signed_power_grad_log(grad_magnitude: Tensor, grad_signed: Tensor, magnitude: Tensor, signed: Tensor) -> Tensor:
    """dL/dψ · ψ summed over the two blocks: the gradient of log ψ (dψ/dp = ψ log|x|, dψ/ds = ψ)."""
    return (grad_magnitude * magnitude).addcmul_(grad_signed, signed)


class SignedPower(torch.autograd.Function):
    """Blocks ψ(x) = (|x|^p, sign(x)|x|^p) of NaLaFormer's relu-split map (arXiv 2506.21137).

    Per coordinate, relu(q)^p relu(k)^α + relu(−q)^p relu(−k)^α = |q|^p |k|^α [sign q = sign k]
    = ½ |q|^p |k|^α (1 + sign q · sign k), so φ_q·φ_k = ½ (ψ_a(q)·ψ_a(k) + ψ_b(q)·ψ_b(k)): the same
    scores as ``relu_split_map`` from two contiguous blocks in a few passes, with a hand-written backward.
    p is a float or a tensor broadcastable to x, e.g. (H, 1, 1); its gradient is summed to its shape.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, p: Tensor | float) -> tuple[Tensor, Tensor]:
        magnitude, signed, clamped, log_abs = _signed_power(x, p, None)
        ctx.save_for_backward(clamped, log_abs, magnitude, signed, p if isinstance(p, Tensor) else None)
        ctx.p = p
        return magnitude, signed

    @staticmethod
    def backward(ctx: Any, grad_magnitude: Tensor, grad_signed: Tensor) -> tuple[Tensor, Tensor | None]:
        clamped, log_abs, magnitude, signed, p_tensor = ctx.saved_tensors
        p = ctx.p if p_tensor is None else p_tensor
        grad_x = _signed_power_grad_x(grad_magnitude, grad_signed, magnitude, signed, clamped, p)
        grad_p = None
        if ctx.needs_input_grad[1]:  # dψ/dp = ψ log|x|
            grad_log = _signed_power_grad_log(grad_magnitude, grad_signed, magnitude, signed)
            grad_p = _sum_to(grad_log.mul_(log_abs), p_tensor.shape)
        return grad_x, grad_p


class NormAwareQueryPower(torch.autograd.Function):
    """NaLaFormer's query blocks ½-scaled: e^s (|q̂|^p, sign(q)|q̂|^p) with p = α(β + tanh ‖q‖) (arXiv 2506.21137).

    The direction q̂ = q / max(‖q‖, ε) enters through the log-scale s = −p log max(‖q‖, ε) − log 2 (the ½
    of ``SignedPower``), so the backward handles the norm, the power and the direction in one place.
    α and β are floats or per-head tensors (H, 1, 1).
    """

    @staticmethod
    def forward(ctx: Any, q: Tensor, alpha: Tensor | float, beta: Tensor | float, eps: float) -> tuple[Tensor, Tensor]:
        norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True)  # (..., 1)
        guarded = norm.clamp_min(eps)
        tanh_norm = torch.tanh(norm)
        p = alpha * (beta + tanh_norm)  # (..., 1)
        log_guarded = guarded.log()
        magnitude, signed, clamped, log_abs = _signed_power(q, p, -p * log_guarded - math.log(2.0))
        ctx.save_for_backward(q, norm, guarded, tanh_norm, p, log_guarded, clamped, log_abs, magnitude, signed)
        ctx.alpha, ctx.beta, ctx.eps = alpha, beta, eps
        return magnitude, signed

    @staticmethod
    def backward(ctx: Any, grad_magnitude: Tensor, grad_signed: Tensor) -> tuple[Tensor | None, ...]:
        q, norm, guarded, tanh_norm, p, log_guarded, clamped, log_abs, magnitude, signed = ctx.saved_tensors
        alpha, beta = ctx.alpha, ctx.beta
        grad_q = _signed_power_grad_x(grad_magnitude, grad_signed, magnitude, signed, clamped, p)
        grad_log = _signed_power_grad_log(grad_magnitude, grad_signed, magnitude, signed)
        grad_s = grad_log.sum(-1, keepdim=True)  # (..., 1)
        grad_p = grad_log.mul_(log_abs).sum(-1, keepdim=True) - grad_s * log_guarded  # through ψ and s
        # d/d‖q‖ through p = α(β + tanh‖q‖) and s = −p log max(‖q‖, ε); d‖q‖/dq = q / ‖q‖.
        grad_norm = grad_p * alpha * (1.0 - tanh_norm.square()) - grad_s * p / guarded * (norm >= ctx.eps)
        grad_q.addcmul_(q, torch.where(norm > 0, grad_norm / norm, 0.0))
        grad_alpha = _sum_to(grad_p * (beta + tanh_norm), alpha.shape) if ctx.needs_input_grad[1] else None
        grad_beta = _sum_to(grad_p * alpha, beta.shape) if ctx.needs_input_grad[2] else None
        return grad_q, grad_alpha, grad_beta, None


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast result back to ``shape`` (the reverse of broadcasting)."""
    lead = t.dim() - len(shape)
    dims = [i for i in range(t.dim()) if i < lead or (shape[i - lead] == 1 and t.shape[i] != 1)]
    return t.sum(dims, keepdim=True).view(shape) if dims else t


def cosine_inhibit_map(x: Tensor, direction: Tensor, p: Tensor | float, s: float) -> Tensor:
    """[|x|^p cos θ, |x|^p sin θ] (..., 2d), θ = (π/4) tanh(s · direction): NaLaFormer (arXiv 2506.21137).

    φ_q·φ_k = Σ_c |q̂_c|^p |k_c|^α cos(θ_q,c − θ_k,c) ≥ 0: opposite signs are inhibited, magnitudes kept.
    """
    theta = (math.pi / 4) * torch.tanh(s * direction)  # (..., d)
    return (abs_pow(x, p).unsqueeze(-2) * torch.stack([theta.cos(), theta.sin()], dim=-2)).flatten(-2)


class NaLaAttention(KernelAttention):
    """NaLaFormer norm-aware linear attention (arXiv 2506.21137): the query norm sets the power of φ_q."""

    name = "nala"

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        alpha: float = 3.0,
        beta: float = 0.5,
        variant: str = "relu_split",
        inhibit_scale: float = 20.0,
        learnable: bool = False,
        value_conv: bool = False,
        output_gate: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(dim, heads, eps)
        if not alpha > 0:
            raise ValueError(f"nala: alpha must be > 0, got {alpha}")
        if not beta >= 0:
            raise ValueError(f"nala: beta must be >= 0, got {beta}")
        if not inhibit_scale > 0:
            raise ValueError(f"nala: inhibit_scale must be > 0, got {inhibit_scale}")
        if variant not in VARIANTS:
            raise ValueError(f"nala: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.inhibit_scale = inhibit_scale
        self.learnable = learnable
        if learnable:  # one α and one β per head
            self.alpha: Tensor | float = nn.Parameter(torch.full((heads,), float(alpha)))
            self.beta: Tensor | float = nn.Parameter(torch.full((heads,), float(beta)))
        else:
            self.alpha, self.beta = float(alpha), float(beta)
        self.value_conv = nn.Conv1d(dim, dim, 5, padding=2, groups=dim) if value_conv else None
        self.gate = nn.Linear(dim, dim) if output_gate else None
        self.gate_norm = nn.LayerNorm(dim) if output_gate else None

    def _head_params(self) -> tuple[Tensor | float, Tensor | float]:
        if isinstance(self.alpha, Tensor) and isinstance(self.beta, Tensor):
            return self.alpha.view(-1, 1, 1), self.beta.view(-1, 1, 1)  # (H, 1, 1) against (B, H, L, d)
        return self.alpha, self.beta

    def feature_blocks(self, q: Tensor, k: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        if self.variant != "relu_split":
            return super().feature_blocks(q, k)
        alpha, beta = self._head_params()
        q_blocks = NormAwareQueryPower.apply(q, alpha, beta, self.eps)  # 2 × (B, H, L, d), with the ½
        k_blocks = SignedPower.apply(k, alpha)  # 2 × (B, H, L, d)
        return list(q_blocks), list(k_blocks)

    def feature_maps(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self._head_params()
        norm, p = norm_aware_power(q, alpha, beta, self.eps)  # (B, H, L, 1) each
        q_dir = q / norm  # (B, H, L, d)
        if self.variant == "relu_split":
            return relu_split_map(q_dir, p), relu_split_map(k, alpha)  # (B, H, L, 2d)
        k_dir = k / torch.linalg.vector_norm(k, dim=-1, keepdim=True).clamp_min(self.eps)
        fq = cosine_inhibit_map(q_dir, q_dir, p, self.inhibit_scale)  # (B, H, L, 2d)
        fk = cosine_inhibit_map(k, k_dir, alpha, self.inhibit_scale)  # (B, H, L, 2d)
        return fq, fk

    def output(self, x: Tensor, y: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        y = self.merge_heads(y)  # (B, L, D)
        if self.value_conv is not None:
            v = self.merge_heads(v)  # (B, L, D)
            if mask is not None:  # zero the padding so it never leaks into real positions
                v = v.masked_fill(~mask[..., None], 0.0)
            y = y + self.value_conv(v.transpose(1, 2)).transpose(1, 2)  # (B, L, D)
        if self.gate is not None and self.gate_norm is not None:
            y = self.gate_norm(y) * F.silu(self.gate(x))  # (B, L, D)
        return self.out(y)
