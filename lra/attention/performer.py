"""Performer: FAVOR+ positive orthogonal random features for softmax attention (arXiv 2009.14794)."""

from __future__ import annotations

import torch
from torch import Tensor

from lra.attention.feature_maps import favor_features, favor_logits, orthogonal_gaussian
from lra.attention.kernel import KernelAttention


class PerformerAttention(KernelAttention):
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
        super().__init__(dim, heads, eps=eps)
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

    def kernel_estimate(self, q: Tensor, k: Tensor) -> Tensor:
        """φ(q)·φ(k) with φ(x) = exp(w·x' − ‖x'‖²/2) / √m, unstabilised: the unbiased estimate of exp(q·k / √d)."""
        fq, fk = favor_logits(q, self.projection).exp(), favor_logits(k, self.projection).exp()  # (..., m) each
        return (fq * fk).sum(-1) / self.num_features

    def feature_maps(self, q: Tensor, k: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """φ_q, φ_k (B, H, L, m): FAVOR+ features stabilised over the real keys (``favor_features``)."""
        return favor_features(q, k, self.projection, mask)
