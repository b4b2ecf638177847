"""Feature maps φ of kernel attention, where softmax(q·k) is replaced by φ_q(q)·φ_k(k) ≥ 0.

A map that acts on queries or keys alone is a ``FeatureMap`` module: ``forward(x, mask)`` with x (B, H, L, d)
and mask (B, L) (True at real tokens, or None) -> φ(x) (B, H, L, F); maps that do not need the mask ignore it.
Maps whose parameters the query and key sides share (NaLa's α and β, PolaFormer's power, Performer's
projection) are plain functions of those parameters, and the attention layer owns the parameters.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lra.attention.ops import valid_keys


class FeatureMap(nn.Module, ABC):
    """A kernel feature map φ for queries or keys, (B, H, L, d) -> (B, H, L, F), given the key padding mask."""

    @abstractmethod
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, H, L, d), mask (B, L) or None -> φ(x) (B, H, L, F)."""

    def blocks(self, x: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """φ(x) split along features, [φ¹, φ², ...] each (B, H, L, F_b), for ``linear_attention``.

        The default is one block. A map may return its parts separately instead (the same scores without
        concatenating them into one strided tensor); query and key maps must then split alike.
        """
        return [self(x, mask)]


# ---- elu + 1 -------------------------------------------------------------------------------------------------


class EluFeatureMap(FeatureMap):
    """φ(x) = elu(x) + 1 > 0 (Katharopoulos et al., 2020, "Transformers are RNNs", arXiv 2006.16236, eq. 7)."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return F.elu(x) + 1.0  # (B, H, L, d)


# ---- powers: NaLaFormer (arXiv 2506.21137) and PolaFormer (arXiv 2501.15061) ----------------------------------


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


def norm_aware_power(q: Tensor, alpha: Tensor | float, beta: Tensor | float, eps: float) -> tuple[Tensor, Tensor]:
    """The guarded query norm m = max(‖q‖, ε) and the exponent p = α(β + tanh ‖q‖), both (..., 1).

    NaLaFormer (arXiv 2506.21137): the query norm acts as a temperature through the power p applied
    to the direction q̂ = q / m.
    """
    n = torch.linalg.vector_norm(q, dim=-1, keepdim=True)  # (..., 1)
    return n.clamp_min(eps), alpha * (beta + torch.tanh(n))


def norm_aware_query_map(q: Tensor, alpha: Tensor | float, beta: Tensor | float, eps: float) -> Tensor:
    """NaLaFormer's query map [relu(q̂)^p, relu(−q̂)^p], p = α(β + tanh ‖q‖) (arXiv 2506.21137): (..., d) -> (..., 2d)."""
    norm, p = norm_aware_power(q, alpha, beta, eps)  # (..., 1) each
    return relu_split_map(q / norm, p)  # (..., 2d)


def cosine_inhibit_map(x: Tensor, direction: Tensor, p: Tensor | float, s: float) -> Tensor:
    """[|x|^p cos θ, |x|^p sin θ] (..., 2d), θ = (π/4) tanh(s · direction): NaLaFormer (arXiv 2506.21137).

    φ_q·φ_k = Σ_c |q̂_c|^p |k_c|^α cos(θ_q,c − θ_k,c) ≥ 0: opposite signs are inhibited, magnitudes kept.
    """
    theta = (math.pi / 4) * torch.tanh(s * direction)  # (..., d)
    return (abs_pow(x, p).unsqueeze(-2) * torch.stack([theta.cos(), theta.sin()], dim=-2)).flatten(-2)


def cosine_inhibit_query_map(
    q: Tensor, alpha: Tensor | float, beta: Tensor | float, scale: float, eps: float
) -> Tensor:
    """NaLaFormer's cosine-inhibit query map (arXiv 2506.21137): ``cosine_inhibit_map`` of q̂ with the norm-aware p."""
    norm, p = norm_aware_power(q, alpha, beta, eps)  # (..., 1) each
    q_dir = q / norm  # (..., d)
    return cosine_inhibit_map(q_dir, q_dir, p, scale)  # (..., 2d)


def cosine_inhibit_key_map(k: Tensor, alpha: Tensor | float, scale: float, eps: float) -> Tensor:
    """NaLaFormer's cosine-inhibit key map (arXiv 2506.21137): ``cosine_inhibit_map`` of k, angles from k̂, power α."""
    k_dir = k / torch.linalg.vector_norm(k, dim=-1, keepdim=True).clamp_min(eps)  # (..., d)
    return cosine_inhibit_map(k, k_dir, alpha, scale)  # (..., 2d)


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


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast result back to ``shape`` (the reverse of broadcasting)."""
    lead = t.dim() - len(shape)
    dims = [i for i in range(t.dim()) if i < lead or (shape[i - lead] == 1 and t.shape[i] != 1)]
    return t.sum(dims, keepdim=True).view(shape) if dims else t


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
    α and β are floats or per-head tensors (H, 1, 1). Paired with ``SignedPower`` blocks of the keys, the
    scores equal ``norm_aware_query_map``·``relu_split_map``.
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


def polarity_parts(x: Tensor, p: Tensor | float) -> tuple[Tensor, Tensor]:
    """PolaFormer's (relu(x)^p, relu(−x)^p), each like x (arXiv 2501.15061): x = x⁺ − x⁻ split by sign, then powered."""
    magnitude = abs_pow(x, p)  # (..., d), exactly 0 at x = 0
    return magnitude * (x > 0), magnitude * (x < 0)


# ---- Hedgehog (arXiv 2402.04347) -----------------------------------------------------------------------------


class HedgehogFeatureMap(FeatureMap):
    """φ(x) = [softmax(Wx + b), softmax(−(Wx + b))] per head, W = I and b = 0 at init (Hedgehog, arXiv 2402.04347).

    Each half is a softmax over the feature dimension, so φ is positive and sums to 2; the learnable W
    lets training make the map as spiky (low-entropy) as softmax attention.
    """

    def __init__(self, heads: int, head_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(head_dim).repeat(heads, 1, 1))  # (H, d, d), acting as x @ W
        self.bias = nn.Parameter(torch.zeros(heads, 1, head_dim))  # (H, 1, d)

    def blocks(self, x: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """x (B, H, L, d) -> [softmax(Wx + b), softmax(−(Wx + b))], each (B, H, L, d)."""
        y = x @ self.weight.to(x.dtype) + self.bias.to(x.dtype)  # (B, H, L, d)
        return [y.softmax(-1), (-y).softmax(-1)]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.cat(self.blocks(x, mask), dim=-1)  # (B, H, L, 2d)


# ---- FAVOR+ (Performer, arXiv 2009.14794) ---------------------------------------------------------------------


def orthogonal_gaussian(rows: int, dim: int, device: torch.device | None = None) -> Tensor:
    """(rows, dim) random features: stacked Haar-orthogonal d×d blocks, each row given a Gaussian vector's norm.

    Performer's orthogonal random features (arXiv 2009.14794, section 2.4): every row is marginally
    N(0, I_d), so the kernel estimate stays unbiased, and rows within a block are exactly orthogonal,
    which lowers its variance. Drawn from torch's global generator (seeded by the run).
    """
    blocks = math.ceil(rows / dim)
    q, r = torch.linalg.qr(torch.randn(blocks, dim, dim, device=device))  # (n, d, d) each
    q = q * torch.diagonal(r, dim1=-2, dim2=-1).sign().unsqueeze(-2)  # Haar-distributed: fix the column signs
    directions = q.transpose(-2, -1).reshape(blocks * dim, dim)[:rows]  # (m, d), orthonormal rows per block
    norms = torch.linalg.vector_norm(torch.randn(rows, dim, device=device), dim=-1, keepdim=True)  # (m, 1), χ_d
    return directions * norms


def favor_logits(x: Tensor, projection: Tensor) -> Tensor:
    """log of FAVOR+'s unnormalised features (arXiv 2009.14794), w·x' − ‖x'‖²/2 with x' = x / d^¼.

    x (B, H, L, d), projection w (m, d) -> (B, H, L, m); Σ_f exp(logit_q,f + logit_k,f) / m is then an
    unbiased estimate of exp(q·k / √d).
    """
    x = x * x.shape[-1] ** -0.25  # q·k / √d = (q / d^¼)·(k / d^¼)
    projection = projection.to(x.dtype)  # (m, d)
    return x @ projection.T - 0.5 * x.square().sum(-1, keepdim=True)  # (B, H, L, m)


def favor_features(q: Tensor, k: Tensor, projection: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """FAVOR+'s φ_q, φ_k (B, H, L, m) (Performer, arXiv 2009.14794), up to factors that cancel in each query's ratio.

    Keys share one stabiliser per sequence and head, the max of their logits over the real keys
    only (padded keys' features are 0), so they stay in (0, 1]. Each query gets its own (it cancels
    in that query's ratio), chosen so that its denominator φ_q·z, with z the mean key feature, lies
    in [1, m]: ε then stays negligible however peaked the features. The stabilisers carry no
    gradient (as in the paper's code); mathematically they have none, up to ε.
    """
    log_q = favor_logits(q, projection)  # (B, H, L, m)
    log_k = favor_logits(k, projection)  # (B, H, L, m)
    if mask is not None:
        log_k = log_k.masked_fill(~mask[:, None, :, None], -math.inf)
    with torch.no_grad():
        stab_k = log_k.amax((-2, -1), keepdim=True)  # (B, H, 1, 1), -inf for an all-padding sequence
        stab_k = torch.where(torch.isfinite(stab_k), stab_k, 0.0)
    fk = (log_k - stab_k).exp()  # (B, H, L, m), in [0, 1]
    with torch.no_grad():
        _, inv_count = valid_keys(mask, k.shape[-2], k.dtype)  # float or (B, 1, 1, 1)
        log_z = (fk.sum(-2, keepdim=True) * inv_count).log()  # (B, H, 1, m), log of the mean key feature
        # max_f (log φ_q,f + log z_f) makes the largest term of φ_q·z exactly 1; the floor keeps every
        # φ_q ≤ e^30 where z underflows (all keys tiny in some features, or no real key at all).
        stab_q = torch.maximum((log_q + log_z).amax(-1, keepdim=True), log_q.amax(-1, keepdim=True) - 30.0)
    return (log_q - stab_q).exp(), fk  # (B, H, L, m) each


# ---- cosFormer (arXiv 2202.08791) ----------------------------------------------------------------------------


def cos_angles(mask: Tensor | None, length: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """cosFormer's angles θ_i = (π/2) · i / M for the positions i = 1..L of each sequence, (B or 1, 1, L, 1).

    M is each sequence's extent, the position of its last real token: the number of real tokens for
    the (usual) right padding, so an output does not depend on how much padding follows. Real
    positions then satisfy 1 ≤ i, j ≤ M, so |θ_i − θ_j| < π/2 and every weight cos(θ_i − θ_j) > 0,
    also with holes in the mask. Padding after the last real token takes position M (its outputs are
    padding anyway; this keeps their weights positive too). Without a mask M = L, as in the paper.
    """
    positions = torch.arange(1, length + 1, device=device, dtype=dtype)  # (L,)
    if mask is None:
        return ((math.pi / 2 / length) * positions)[None, None, :, None]  # (1, 1, L, 1)
    extent = (mask.to(dtype) * positions).amax(-1, keepdim=True).clamp_min(1.0)  # (B, 1)
    return ((math.pi / 2) * torch.minimum(positions, extent) / extent)[:, None, :, None]  # (B, 1, L, 1)


class CosFormerFeatureMap(FeatureMap):
    """φ(x_i) = [relu(x_i) cos θ_i, relu(x_i) sin θ_i], θ_i = π/2 · i / M (cosFormer, arXiv 2202.08791).

    φ(q_i)·φ(k_j) = relu(q_i)·relu(k_j) cos(θ_i − θ_j): the cos re-weighting as a feature map; M is
    each sequence's own extent (``cos_angles``), so it needs the mask.
    """

    def blocks(self, x: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        theta = cos_angles(mask, x.shape[-2], x.device, x.dtype)  # (B or 1, 1, L, 1)
        r = F.relu(x)  # (B, H, L, d)
        return [r * theta.cos(), r * theta.sin()]  # 2 × (B, H, L, d)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.cat(self.blocks(x, mask), -1)  # (B, H, L, 2d)


def rotary(x: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding (Su et al., 2021, "RoFormer", arXiv 2104.09864) over the last dimension.

    x (..., L, F) with F even: pair (x_2i, x_2i+1) at position t is rotated by t·base^(−2i/F), so that
    R_t x · R_s y depends on t − s only. Positions are the sequence index, so right padding changes nothing.
    """
    length, features = x.shape[-2], x.shape[-1]
    if features % 2:
        raise ValueError(f"rotary positions need an even feature size, got {features}")
    frequency = base ** (-torch.arange(0, features, 2, device=x.device, dtype=x.dtype) / features)  # (F/2,)
    angle = torch.arange(length, device=x.device, dtype=x.dtype)[:, None] * frequency  # (L, F/2)
    cos, sin = angle.cos(), angle.sin()
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., L, F/2) each
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)  # (..., L, F)
