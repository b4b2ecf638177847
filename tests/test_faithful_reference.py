"""Our faithful model against an independent forward pass of protocol 2's reference code, written out here.

The reference (Skyformer's `models/model_transformer.py`, `model_LRA.py`, `attention.py`, as protocol 2 ran it):
every sequence padded with 0 to a fixed length (max_length rounded up to a power of two); `mask = ids != 0`;
token + learned position embeddings; pre-norm blocks with softmax attention that subtracts 1e6 from masked
keys' scores; a final LayerNorm times the mask; the mean over all fixed-length positions; a Linear-ReLU-Linear
head (two towers: over [u, v, u*v, u-v]). It is written with plain tensor functions from that description, never
by calling our model, and our weights are copied in by name. Our model pads each batch only to its longest
sequence; matching the reference's logits shows that dividing by the fixed length gives what padding to it gives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lra.data.base import Collate
from lra.model import Encoder, LRAModel

DIM, HEADS, FFN, DEPTH, VOCAB = 16, 2, 32, 2, 20


def our_model(max_length: int, two_tower: bool, num_classes: int = 5) -> LRAModel:
    torch.manual_seed(0)
    encoder = Encoder(
        vocab_size=VOCAB,
        max_length=max_length,
        attention="softmax",
        attention_kwargs={},
        depth=DEPTH,
        dim=DIM,
        heads=HEADS,
        ffn_dim=FFN,
        dropout=0.1,
        pooling="mean",
        position="learned",
        attention_dropout=0.1,
        protocol="faithful",
    )
    return LRAModel(encoder, DIM, FFN, num_classes, two_tower).eval()


def reference_encoder(w: dict[str, Tensor], ids: Tensor) -> Tensor:
    """ids (B, P) padded with 0 to the fixed length P -> pooled (B, D), as the reference computes it in eval mode."""
    b, p = ids.shape
    mask = (ids != 0).float()  # (B, P)
    x = w["embedding.tokens.weight"][ids] + w["reference.position"][:p]  # (B, P, D)
    head_dim = DIM // HEADS
    for i in range(DEPTH):
        pre = f"blocks.{i}."
        h = F.layer_norm(x, (DIM,), w[pre + "attention_norm.weight"], w[pre + "attention_norm.bias"])
        q, k, v = (
            F.linear(h, w[pre + f"attention.{name}.weight"], w[pre + f"attention.{name}.bias"])
            .reshape(b, p, HEADS, head_dim)
            .transpose(1, 2)
            for name in ("q", "k", "v")
        )  # (B, H, P, d) each
        dot = q @ k.transpose(-2, -1) / math.sqrt(head_dim) - 1e6 * (1 - mask[:, None, None, :])  # (B, H, P, P)
        mixed = (dot.softmax(-1) @ v).transpose(1, 2).reshape(b, p, DIM)  # (B, P, D)
        x = x + F.linear(mixed, w[pre + "attention.out.weight"], w[pre + "attention.out.bias"])
        h = F.layer_norm(x, (DIM,), w[pre + "ffn_norm.weight"], w[pre + "ffn_norm.bias"])
        h = F.gelu(F.linear(h, w[pre + "ffn.0.weight"], w[pre + "ffn.0.bias"]))
        x = x + F.linear(h, w[pre + "ffn.3.weight"], w[pre + "ffn.3.bias"])
    x = F.layer_norm(x, (DIM,), w["norm.weight"], w["norm.bias"]) * mask[:, :, None]
    return x.mean(dim=1)  # over all P positions


def reference_head(w: dict[str, Tensor], features: Tensor) -> Tensor:
    return F.linear(
        F.relu(F.linear(features, w["head.0.weight"], w["head.0.bias"])), w["head.2.weight"], w["head.2.bias"]
    )


def reference_weights(model: LRAModel, fixed_length: int) -> dict[str, Tensor]:
    """Our weights by name, with the reference's position table of `fixed_length` rows: ours first, then rows that
    only padded positions use (random: they must not matter)."""
    weights = {name.removeprefix("encoder."): value.detach().clone() for name, value in model.state_dict().items()}
    ours = weights["embedding.position.weight"]
    extra = torch.randn(fixed_length - len(ours), DIM, generator=torch.Generator().manual_seed(1))
    weights["reference.position"] = torch.cat([ours, extra])
    return weights


def pad_to(sequences: list[np.ndarray], length: int) -> Tensor:
    ids = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, tokens in enumerate(sequences):
        ids[row, : len(tokens)] = torch.as_tensor(tokens)
    return ids


def sequences(lengths: list[int], seed: int, zeros: float = 0.0) -> list[np.ndarray]:
    """Random token sequences of ids 1..VOCAB-1, with a fraction `zeros` of ids set to 0 (black pixels)."""
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        tokens = rng.integers(1, VOCAB, size=n)
        tokens[rng.random(n) < zeros] = 0
        out.append(tokens)
    return out


def test_padded_listops_like_batch_matches_the_reference() -> None:
    max_length, fixed = 100, 128  # the reference pads to max_length rounded up to a power of two
    model = our_model(max_length, two_tower=False)
    batch = sequences([100, 37, 5, 64], seed=0)
    ours = Collate(mask_zeros=True)([(tokens, 0) for tokens in batch])
    assert ours["tokens"].shape == (4, 100)  # padded only to the longest
    w = reference_weights(model, fixed)
    with torch.no_grad():
        logits = model(ours)
        expected = reference_head(w, reference_encoder(w, pad_to(batch, fixed)))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_two_tower_batch_matches_the_reference() -> None:
    max_length, fixed = 60, 64
    model = our_model(max_length, two_tower=True, num_classes=2)
    first, second = sequences([60, 12, 33], seed=1), sequences([8, 60, 41], seed=2)
    ours = Collate(two_tower=True, mask_zeros=True)([((a, b), 1) for a, b in zip(first, second, strict=True)])
    w = reference_weights(model, fixed)
    with torch.no_grad():
        logits = model(ours)
        u, v = reference_encoder(w, pad_to(first, fixed)), reference_encoder(w, pad_to(second, fixed))
        expected = reference_head(w, torch.cat([u, v, u * v, u - v], dim=-1))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_image_batch_with_black_pixels_matches_the_reference() -> None:
    """Image tasks have no padding; the reference masks their black pixels (id 0) all the same, and so do we."""
    pixels = 64  # an 8x8 image: already a power of two, as 32x32 is
    model = our_model(pixels, two_tower=False)
    batch = sequences([pixels] * 3, seed=3, zeros=0.6)
    assert all((tokens == 0).mean() > 0.3 for tokens in batch)
    ours = Collate(mask_zeros=True)([(tokens, 0) for tokens in batch])
    assert torch.equal(ours["mask"], ours["tokens"] != 0)
    w = reference_weights(model, pixels)
    with torch.no_grad():
        logits = model(ours)
        expected = reference_head(w, reference_encoder(w, pad_to(batch, pixels)))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_the_clean_mask_would_differ_on_black_pixels() -> None:
    """The comparison above can fail: keeping black pixels as real tokens changes the logits."""
    pixels = 64
    model = our_model(pixels, two_tower=False)
    batch = sequences([pixels] * 3, seed=3, zeros=0.6)
    w = reference_weights(model, pixels)
    with torch.no_grad():
        logits = model(Collate(mask_zeros=False)([(tokens, 0) for tokens in batch]))
        expected = reference_head(w, reference_encoder(w, pad_to(batch, pixels)))
    with pytest.raises(AssertionError):
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
