"""Nyströmformer: softmax attention approximated from segment-mean landmarks and an iterative pseudo-inverse."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lra.attention.base import Attention, in_compute_dtype


def iterative_pinv(a: Tensor, iterations: int) -> Tensor:
    """Moore–Penrose pseudo-inverse of square matrices a (..., n, n) by Nyströmformer's iteration (arXiv 2102.03902).

    Z₀ = aᵀ / (‖a‖₁ ‖a‖∞) per matrix (their eq. 16; for a row-stochastic softmax matrix ‖a‖∞ = 1), then
    Z ← ¼ Z (13I − aZ (15I − aZ (7I − aZ))), which converges to a⁺.
    """
    abs_a = a.abs()
    norms = abs_a.sum(-2).amax(-1) * abs_a.sum(-1).amax(-1)  # (...,): max column sum × max row sum
    z = a.transpose(-2, -1) / norms[..., None, None]  # (..., n, n)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)  # (n, n)
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def landmark_segments(keep: Tensor, num_landmarks: int) -> Tensor:
    """The landmark each token belongs to, (B, L) int64: real tokens in order, split into m near-equal runs.

    The r-th real token (r = 0..n−1) of a sequence with n real tokens goes to landmark ⌊r m / n⌋: for n ≥ m
    every landmark averages ⌊n/m⌋ or ⌈n/m⌉ consecutive real tokens (exactly n/m when m divides n, as in
    the paper); for n < m each real token is a landmark of its own and m − n landmarks stay empty. Padded
    tokens go to an extra slot m that is dropped, so landmarks depend on the real tokens only.
    """
    rank = keep.cumsum(-1) - 1  # (B, L): index among the real tokens
    count = keep.sum(-1, keepdim=True).clamp_min(1)  # (B, 1)
    return torch.where(keep, rank * num_landmarks // count, num_landmarks)  # (B, L)


def segment_means(x: Tensor, segments: Tensor, sizes: Tensor) -> Tensor:
    """Per-landmark means of x (B, H, L, d) over the tokens of each segment -> (B, H, m, d); empty ones are 0."""
    b, h, n, d = x.shape
    m = sizes.shape[-1]
    index = segments[:, None, :, None].expand(b, h, n, d)  # (B, H, L, d)
    sums = x.new_zeros(b, h, m + 1, d).scatter_add(2, index, x)[:, :, :m]  # (B, H, m, d), slot m = padding
    return sums / sizes.clamp_min(1.0)[:, None, :, None]


def masked_softmax(logits: Tensor, valid: Tensor) -> Tensor:
    """Softmax over the last dim with invalid columns -> exactly 0; valid (B, N) has a True in every row."""
    return logits.masked_fill(~valid[:, None, None, :], float("-inf")).softmax(-1)


def nystrom_mix(
    q: Tensor, k: Tensor, v: Tensor, keep: Tensor, num_landmarks: int, iterations: int, exact_when_short: bool = True
) -> Tensor:
    """softmax(QKᵀ) V ≈ softmax(Q K̃ᵀ) pinv(softmax(Q̃ K̃ᵀ)) softmax(Q̃ Kᵀ) V with landmarks Q̃, K̃ (B, H, m, d).

    q (already scaled by d^−½), k, v (B, H, L, d); keep (B, L) True at real tokens, at least one per row.
    Empty landmarks (sequences with fewer than m real tokens) get no weight in softmax(Q K̃ᵀ) and an identity
    row in softmax(Q̃ K̃ᵀ), so the result equals the one computed from the non-empty landmarks alone. A
    sequence with n ≤ m real tokens has every real token as a landmark, where Nyström is exact
    (A A⁺ A = A): it gets softmax(Q K̃ᵀ) Ṽ, exact softmax attention, at the same cost (unless
    ``exact_when_short`` is False, which tests use to check the Nyström formula itself).
    """
    m = num_landmarks
    segments = landmark_segments(keep, m)  # (B, L)
    real = keep.to(q.dtype)  # (B, L)
    sizes = real.new_zeros(real.shape[0], m + 1).scatter_add(1, segments, real)[:, :m]  # (B, m) tokens per landmark
    valid = sizes > 0  # (B, m): non-empty landmarks
    q_land, k_land = segment_means(q, segments, sizes), segment_means(k, segments, sizes)  # (B, H, m, d)
    kernel_1 = masked_softmax(q @ k_land.transpose(-2, -1), valid)  # (B, H, L, m)
    short = keep.sum(-1) <= m if exact_when_short else torch.zeros_like(keep[:, 0])  # (B,)
    exact = kernel_1 @ segment_means(v, segments, sizes)  # (B, H, L, d): softmax attention where n <= m
    if exact_when_short and q.shape[-2] <= m:  # every sequence has n <= m
        return exact
    kernel_2 = masked_softmax(q_land @ k_land.transpose(-2, -1), valid)  # (B, H, m, m)
    eye = torch.eye(m, dtype=q.dtype, device=q.device)
    kernel_2 = torch.where(valid[:, None, :, None], kernel_2, eye)  # empty landmarks: identity rows
    kernel_3 = masked_softmax(q_land @ k.transpose(-2, -1), keep)  # (B, H, m, L)
    approx = kernel_1 @ (iterative_pinv(kernel_2, iterations) @ (kernel_3 @ v))  # (B, H, L, d)
    return torch.where(short[:, None, None, None], exact, approx)


class NystromAttention(Attention):
    """Nyströmformer: A Nyström-Based Algorithm for Approximating Self-Attention (arXiv 2102.03902)."""

    name = "nystrom"

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        num_landmarks: int = 64,
        pinv_iterations: int = 6,
        conv_kernel: int | None = 35,
    ) -> None:
        super().__init__(dim, heads)
        if num_landmarks < 1:
            raise ValueError(f"nystrom: num_landmarks must be >= 1, got {num_landmarks}")
        if pinv_iterations < 0:
            raise ValueError(f"nystrom: pinv_iterations must be >= 0, got {pinv_iterations}")
        if conv_kernel is not None and (conv_kernel < 1 or conv_kernel % 2 == 0):
            raise ValueError(f"nystrom: conv_kernel must be a positive odd integer or null, got {conv_kernel}")
        self.num_landmarks = num_landmarks
        self.pinv_iterations = pinv_iterations
        # Their skip: one (kernel × 1) filter per head along the sequence, shared by the head's channels.
        self.conv = (
            nn.Conv2d(heads, heads, (conv_kernel, 1), padding=(conv_kernel // 2, 0), groups=heads, bias=False)
            if conv_kernel is not None
            else None
        )

    @in_compute_dtype
    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        b, _, n, d = q.shape
        q = q * d**-0.5
        if mask is None:
            keep = torch.ones(b, n, dtype=torch.bool, device=q.device)  # (B, L)
        else:  # a sequence with no real token attends to all of its (padding) tokens, like softmax
            keep = mask | ~mask.any(-1, keepdim=True)  # (B, L)
        v = v.masked_fill(~keep[:, None, :, None], 0.0)  # padded values never reach real positions
        out = nystrom_mix(q, k, v, keep, self.num_landmarks, self.pinv_iterations)  # (B, H, L, d)
        if self.conv is not None:
            out = out + self.conv(v)  # (B, H, L, d)
        return out
