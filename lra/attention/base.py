"""The attention contract: multi-head self-attention over (B, L, D) with a key padding mask."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

AttendMethod = TypeVar("AttendMethod", bound=Callable[..., Tensor])


def compute_dtype(t: Tensor) -> torch.dtype:
    """float32 for half-precision inputs (bf16/fp16), the input's own dtype for float32/float64."""
    return torch.promote_types(t.dtype, torch.float32)


def in_compute_dtype(attend: AttendMethod) -> AttendMethod:
    """Decorate ``attend(self, q, k, v, mask)`` to run in ``compute_dtype`` with autocast off, returning q's dtype.

    Feature maps, reductions and normalisers then run in float32 even under bf16 autocast (float64 stays).
    """

    @functools.wraps(attend)
    def wrapper(self: Any, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        dtype = compute_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            out = attend(self, q.to(dtype), k.to(dtype), v.to(dtype), mask)  # (B, H, L, e)
        return out.to(q.dtype)

    return wrapper  # type: ignore[return-value]


class Attention(nn.Module, ABC):
    """Multi-head self-attention (Vaswani et al., 2017, "Attention Is All You Need"): the shared contract.

    ``forward(x, mask)`` projects x (B, L, D) to q, k, v (B, H, L, d), lets the subclass mix them in
    ``attend`` and merges the heads back through ``output``. ``mask`` (B, L) is True at real tokens;
    padded keys contribute nothing and real outputs never depend on padded positions.
    """

    name: ClassVar[str]  # the registry name, also used in error messages (a subclass without one: its class name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

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
