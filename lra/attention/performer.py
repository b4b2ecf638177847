"""Performer: FAVOR+ positive orthogonal random features for softmax attention (arXiv 2009.14794)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lra.attention.masked_kernel import MaskedKernelAttention


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


class PerformerAttention(MaskedKernelAttention):
    """Performer FAVOR+ attention (Choromanski et al., 2021, "Rethinking Attention with Performers", arXiv 2009.14794).

    φ(x) = exp(w·x − ‖x‖²/2) / √m with x = q / d^¼ (k / d^¼), so that E[φ(q)·φ(k)] = exp(q·k / √d).
    The projection w (m, d) is a buffer (saved in checkpoints), redrawn every ``redraw_interval``
    training forward passes (0: never) and never in eval mode.
    """

    name = "performer"

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        num_features: int = 128,
        redraw_interval: int = 1000,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(dim, heads, eps)
        if num_features < 1:
            raise ValueError(f"performer: num_features must be >= 1, got {num_features}")
        if redraw_interval < 0:
            raise ValueError(f"performer: redraw_interval must be >= 0 (0: never redraw), got {redraw_interval}")
        self.num_features = num_features
        self.redraw_interval = redraw_interval
        self.calls_since_redraw = 0  # training forward passes with the current projection
        self.register_buffer("projection", orthogonal_gaussian(num_features, self.head_dim))  # (m, d)

    @torch.no_grad()
    def redraw_features(self) -> None:
        """Draw a fresh projection in place (same device and dtype) and restart the redraw count."""
        fresh = orthogonal_gaussian(self.num_features, self.head_dim, device=self.projection.device)
        self.projection.copy_(fresh)
        self.calls_since_redraw = 0

    @torch.compiler.disable  # Python bookkeeping: keep it out of compiled graphs (no guard on the counter)
    def _count_training_call(self) -> None:
        if not self.training or self.redraw_interval == 0:
            return
        if self.calls_since_redraw >= self.redraw_interval:
            self.redraw_features()
        self.calls_since_redraw += 1

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        self._count_training_call()
        return super().forward(x, mask)

    def feature_logits(self, x: Tensor) -> Tensor:
        """log of the unnormalised features, w·x' − ‖x'‖²/2 with x' = x / d^¼: (B, H, L, d) -> (B, H, L, m)."""
        x = x * self.head_dim**-0.25  # q·k / √d = (q / d^¼)·(k / d^¼)
        projection = self.projection.to(x.dtype)  # (m, d)
        return x @ projection.T - 0.5 * x.square().sum(-1, keepdim=True)  # (B, H, L, m)

    def kernel_estimate(self, q: Tensor, k: Tensor) -> Tensor:
        """φ(q)·φ(k) with φ(x) = exp(w·x' − ‖x'‖²/2) / √m, unstabilised: the unbiased estimate of exp(q·k / √d)."""
        return (self.feature_logits(q).exp() * self.feature_logits(k).exp()).sum(-1) / self.num_features

    def masked_feature_maps(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """φ_q, φ_k (B, H, L, m): the FAVOR+ features up to factors that cancel in each query's ratio.

        Keys share one stabiliser per sequence and head, the max of their logits over the real keys
        only (padded keys' features are 0), so they stay in (0, 1]. Each query gets its own (it cancels
        in that query's ratio), chosen so that its denominator φ_q·z, with z the mean key feature, lies
        in [1, m]: ε then stays negligible however peaked the features. The stabilisers carry no
        gradient (as in the paper's code); mathematically they have none, up to ε.
        """
        log_q = self.feature_logits(q)  # (B, H, L, m)
        log_k = self.feature_logits(k)  # (B, H, L, m)
        if mask is not None:
            log_k = log_k.masked_fill(~mask[:, None, :, None], -math.inf)
        with torch.no_grad():
            stab_k = log_k.amax((-2, -1), keepdim=True)  # (B, H, 1, 1), -inf for an all-padding sequence
            stab_k = torch.where(torch.isfinite(stab_k), stab_k, 0.0)
        fk = (log_k - stab_k).exp()  # (B, H, L, m), in [0, 1]
        with torch.no_grad():
            _, inv_count = self._valid_keys(mask, k.shape[-2], k.dtype)  # float or (B, 1, 1, 1)
            log_z = (fk.sum(-2, keepdim=True) * inv_count).log()  # (B, H, 1, m), log of the mean key feature
            # max_f (log φ_q,f + log z_f) makes the largest term of φ_q·z exactly 1; the floor keeps every
            # φ_q ≤ e^30 where z underflows (all keys tiny in some features, or no real key at all).
            stab_q = torch.maximum((log_q + log_z).amax(-1, keepdim=True), log_q.amax(-1, keepdim=True) - 30.0)
        return (log_q - stab_q).exp(), fk  # (B, H, L, m) each
