"""Attention registry: config names -> attention classes, and a checked constructor.

Levels: ``base`` (the contract), ``ops`` (the linear-time kernel op and its naive reference),
``feature_maps`` (φ for kernel attention), ``kernel`` (the kernel attention layer), then one file per attention.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lra.attention.base import Attention
from lra.attention.cosformer import CosFormerAttention
from lra.attention.feature_maps import FeatureMap
from lra.attention.hedgehog import HedgehogAttention
from lra.attention.kernel import KernelAttention
from lra.attention.linear import LinearAttention
from lra.attention.nala import NaLaAttention, NaLaReleasedAttention
from lra.attention.nystrom import NystromAttention
from lra.attention.performer import PerformerAttention
from lra.attention.polaformer import PolaFormerAttention
from lra.attention.softmax import SoftmaxAttention

ATTENTIONS: dict[str, type[Attention]] = {
    cls.name: cls
    for cls in (
        SoftmaxAttention,
        LinearAttention,
        NaLaAttention,
        NaLaReleasedAttention,
        NystromAttention,
        HedgehogAttention,
        PerformerAttention,
        CosFormerAttention,
        PolaFormerAttention,
    )
}


def accepted_kwargs(cls: type[Attention]) -> list[str]:
    """The keyword arguments of an attention's constructor besides dim and heads."""
    params = inspect.signature(cls).parameters
    return [name for name in params if name not in ("dim", "heads")]


def build_attention(name: str, dim: int, heads: int, kwargs: Mapping[str, Any] | None = None) -> Attention:
    """Build the attention registered as ``name``; unknown names and keyword arguments raise ValueError."""
    if name not in ATTENTIONS:
        raise ValueError(f"unknown attention {name!r}; known attentions: {', '.join(sorted(ATTENTIONS))}")
    cls = ATTENTIONS[name]
    kwargs = dict(kwargs or {})
    accepted = accepted_kwargs(cls)
    unexpected = sorted(set(kwargs) - set(accepted))
    if unexpected:
        raise ValueError(
            f"attention {name!r} got unexpected argument(s) {', '.join(unexpected)}; "
            f"it accepts: {', '.join(accepted) or '(none)'}"
        )
    return cls(dim, heads, **kwargs)


__all__ = [
    "ATTENTIONS",
    "Attention",
    "CosFormerAttention",
    "FeatureMap",
    "HedgehogAttention",
    "KernelAttention",
    "LinearAttention",
    "NaLaAttention",
    "NaLaReleasedAttention",
    "NystromAttention",
    "PerformerAttention",
    "PolaFormerAttention",
    "SoftmaxAttention",
    "accepted_kwargs",
    "build_attention",
]
