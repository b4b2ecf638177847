"""The LRA encoder: token + position embeddings, pre-norm blocks with a chosen attention, pooling, heads."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lra.attention import (
    ATTENTIONS,
    EXAMPLE_PATH,
    accepted_kwargs,
    build_attention,
    import_class,
    installed_attentions,
    known_attentions,
    resolve_attention,
)
from lra.protocol import Protocol, check_protocol, padded_length

Pooling = Literal["mean", "cls"]
Position = Literal["learned", "sinusoidal", "none"]


def attention_per_layer(attention: str | Sequence[str], depth: int) -> list[str]:
    """One attention per layer: a single one is repeated, a list must have `depth` entries.

    Each is a built-in name, a class by import path ("package.module:Class") or a name an installed package
    registers (lra.attention.resolve_attention); each must resolve to a class that follows the contract.
    """
    if depth < 1:
        raise ValueError(f"model.depth must be >= 1, got {depth}")
    names = [attention] * depth if isinstance(attention, str) else list(attention)
    if len(names) != depth:
        raise ValueError(
            f"model.attention lists {len(names)} attentions ({names}) but model.depth is {depth}: "
            "give one name per layer, or a single name for all layers"
        )
    plain = {name for name in names if name not in ATTENTIONS and ":" not in name}
    unknown = sorted(plain - set(installed_attentions())) if plain else []
    if unknown:
        raise ValueError(
            f"model.attention: unknown attention {unknown}; known: {known_attentions()} "
            f"(or a class by import path, e.g. {EXAMPLE_PATH!r})"
        )
    for name in dict.fromkeys(names):
        try:
            resolve_attention(name)
        except ValueError as error:
            raise ValueError(f"model.attention: {error}") from error
    return names


def kwargs_per_layer(
    names: list[str], attention_kwargs: Mapping[str, Any], attention_dropout: float = 0.0
) -> list[dict[str, Any]]:
    """Give each layer the attention_kwargs its attention accepts.

    In a hybrid (e.g. nala then softmax) `{alpha: 3.0}` reaches the NaLa layers only. A key that no attention
    accepts (built-in, in use, or installed) is an error (a typo); one that only attentions not in use accept
    (NaLa's alpha with `attention: softmax`) is left out with a warning, so switching the attention of a task
    config just works. A user's class (by import path or entry point) is checked the same way, by the keyword
    arguments of its constructor.
    `attention_dropout` becomes the `dropout` of every attention that forms attention probabilities (takes one),
    unless attention_kwargs sets `dropout` itself.
    """
    accepted = {name: set(accepted_kwargs(resolve_attention(name))) for name in names}
    known = set().union(*accepted.values(), *(accepted_kwargs(cls) for cls in ATTENTIONS.values()))
    if set(attention_kwargs) - known:
        known |= installed_kwargs()
    unknown = sorted(set(attention_kwargs) - known)
    if unknown:
        options = {name: sorted(keys) for name, keys in accepted.items()}
        raise ValueError(f"model.attention_kwargs: {unknown} not accepted by any attention; accepted here: {options}")
    unused = sorted(set(attention_kwargs) - set().union(*accepted.values()))
    if unused:
        warnings.warn(
            f"model.attention_kwargs {unused} are not used: no layer's attention ({sorted(set(names))}) takes them",
            stacklevel=2,
        )
    layers = []
    for name in names:
        defaults = {"dropout": attention_dropout} if "dropout" in accepted[name] else {}
        layers.append(defaults | {key: value for key, value in attention_kwargs.items() if key in accepted[name]})
    return layers


def installed_kwargs() -> set[str]:
    """The options of the attentions installed packages register; one that does not import counts for none."""
    keys: set[str] = set()
    for name, path in installed_attentions().items():
        with contextlib.suppress(ValueError):
            keys.update(accepted_kwargs(import_class(path, name)))
    return keys


def sinusoidal_table(length: int, dim: int) -> Tensor:
    """Fixed sine/cosine position table of Vaswani et al. (2017), shape (length, dim)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (D/2,)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class Embedding(nn.Module):
    """Token embedding (with an optional learned CLS vector in front) plus positions, then dropout.

    Token and learned position tables start from N(0, 0.02), as in protocol 2's code (and BERT).
    """

    def __init__(
        self, vocab_size: int, max_length: int, dim: int, position: Position, dropout: float, cls: bool
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.tokens.weight, std=0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if cls else None
        self.max_length = max_length
        positions = max_length + int(cls)
        self.position: nn.Embedding | None = None
        if position == "learned":
            self.position = nn.Embedding(positions, dim)
            nn.init.normal_(self.position.weight, std=0.02)
        elif position == "sinusoidal":
            self.register_buffer("sinusoid", sinusoidal_table(positions, dim), persistent=False)
        elif position != "none":
            raise ValueError(f"model.position must be learned, sinusoidal or none, got {position!r}")
        self.kind = position
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B, L) -> (B, L, D), or (B, 1 + L, D) with the CLS vector first."""
        if tokens.shape[1] > self.max_length:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds the model's max_length {self.max_length}")
        x = self.tokens(tokens)  # (B, L, D)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + L, D)
        length = x.shape[1]
        if self.position is not None:
            x = x + self.position.weight[:length]
        elif self.kind == "sinusoidal":
            x = x + self.sinusoid[:length]
        return self.dropout(x)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, attention: nn.Module, dim: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = attention
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))  # (B, L, D)
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Encoder(nn.Module):
    """Embeds a token sequence, runs the blocks and pools to one vector per sequence.

    Mean pooling sums the final LayerNorm's outputs at the real (unmasked) positions and divides by the number
    of real tokens (protocol `clean`) or, as protocol 2's code does, by the fixed length every sequence is padded
    to there, max_length rounded up to a power of two (`faithful`). Batches are padded only to their longest
    sequence either way: padded positions are masked, so the sum is the same.
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        attention: str | Sequence[str],
        attention_kwargs: Mapping[str, Any],
        depth: int,
        dim: int,
        heads: int,
        ffn_dim: int,
        dropout: float,
        pooling: Pooling,
        position: Position,
        attention_dropout: float = 0.0,
        protocol: Protocol = "faithful",
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"model.pooling must be mean or cls, got {pooling!r}")
        names = attention_per_layer(attention, depth)
        layer_kwargs = kwargs_per_layer(names, attention_kwargs, attention_dropout)
        self.pooling = pooling
        self.protocol = check_protocol(protocol, "model.protocol")
        self.pool_length = padded_length(max_length) if self.protocol == "faithful" else None
        self.embedding = Embedding(vocab_size, max_length, dim, position, dropout, cls=pooling == "cls")
        self.blocks = nn.ModuleList(
            EncoderBlock(build_attention(name, dim, heads, kwargs), dim, ffn_dim, dropout)
            for name, kwargs in zip(names, layer_kwargs, strict=True)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """tokens (B, L) int, mask (B, L) bool with True = real token -> pooled (B, D)."""
        x = self.embedding(tokens)  # (B, L', D), L' = 1 + L with a CLS vector
        if self.pooling == "cls":
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)  # (B, 1 + L)
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        if self.pooling == "cls":
            return x[:, 0]
        weights = mask.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        total = (x * weights).sum(1)  # (B, D)
        if self.pool_length is not None:
            return total / self.pool_length  # ÷ the fixed padded length, as protocol 2's code
        return total / weights.sum(1).clamp_min(1.0)  # ÷ the real tokens


class LRAModel(nn.Module):
    """Encoder + classifier head; two-tower mode encodes both documents and classifies [u, v, u·v, u−v]."""

    def __init__(self, encoder: Encoder, dim: int, ffn_dim: int, num_classes: int, two_tower: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.two_tower = two_tower
        features = 4 * dim if two_tower else dim
        self.head = nn.Sequential(nn.Linear(features, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, num_classes))

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """A batch of lra.data.base.collate (`tokens`, `mask`: (B, L), mask True = real token) or, two-tower, of
        collate_pairs (`tokens_a`, `mask_a`, `tokens_b`, `mask_b`) -> logits (B, num_classes)."""
        if not self.two_tower:
            return self.head(self.encoder(batch["tokens"], batch["mask"]))
        u = self.encoder(batch["tokens_a"], batch["mask_a"])  # (B, D)
        v = self.encoder(batch["tokens_b"], batch["mask_b"])  # (B, D)
        return self.head(torch.cat([u, v, u * v, u - v], dim=-1))
