"""NaLaFormer specifics: hand-checked maps through the layer, norm-aware sharpness, zero vectors, optional parts."""

from __future__ import annotations

import itertools

import pytest
import torch

from lra.attention import LinearAttention, NaLaAttention


def test_relu_split_query_map_by_hand() -> None:
    # q = [3, -4]: ‖q‖ = 5, q̂ = [0.6, -0.8], tanh 5 = 0.99990920, p = 3 · (0.5 + 0.99990920) = 4.49972761.
    # 0.6^4.5 = 0.1296 · √0.6 = 0.1296 · 0.77459667 = 0.10038773, and 0.6^(4.49972761 - 4.5)
    # = e^(0.00027239 · 0.51082562) = 1.00013915, so 0.6^p = 0.10040170.
    # 0.8^4.5 = 0.4096 · √0.8 = 0.4096 · 0.89442719 = 0.36635737, times e^(0.00027239 · 0.22314355)
    # = 1.00006078 gives 0.8^p = 0.36637964.
    # φ_q = [relu(q̂)^p, relu(-q̂)^p] = [0.10040170, 0, 0, 0.36637964].
    module = NaLaAttention(2, 1, alpha=3.0, beta=0.5).double()
    q = torch.tensor([[[[3.0, -4.0]]]], dtype=torch.float64)  # (B, H, L, d) = (1, 1, 1, 2)
    k = torch.tensor([[[[2.0, -1.0]]]], dtype=torch.float64)
    expected_q = torch.tensor([0.10040170, 0.0, 0.0, 0.36637964], dtype=torch.float64)
    # φ_k = [relu(k)^α, relu(-k)^α] = [2³, 0, 0, 1³] = [8, 0, 0, 1].
    expected_k = torch.tensor([8.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    fq, fk = module.feature_maps(q, k)
    torch.testing.assert_close(fq.flatten(), expected_q, rtol=0, atol=1e-8)
    torch.testing.assert_close(fk.flatten(), expected_k, rtol=0, atol=1e-12)
    # The linear form's blocks give the same score: φ_q·φ_k = 0.10040170 · 8 + 0.36637964 · 1 = 1.16959324.
    q_blocks, k_blocks = module.feature_blocks(q, k)
    score = sum((a * b).sum() for a, b in zip(q_blocks, k_blocks, strict=True))
    assert float(score) == pytest.approx(1.16959324, abs=1e-7)


def test_cosine_inhibit_scores_nonnegative_and_inhibit_opposite_signs() -> None:
    module = NaLaAttention(2, 1, variant="cosine_inhibit", inhibit_scale=20.0).double()
    q = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    k = torch.tensor([[[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]]], dtype=torch.float64)
    fq, fk = module.feature_maps(q, k)
    scores = (fq @ fk.transpose(-2, -1)).flatten()  # same sign, opposite sign, orthogonal
    assert scores[0] == pytest.approx(1.0, abs=1e-12)  # cos(π/4·tanh 20 - π/4·tanh 20) = 1
    assert 0.0 <= scores[1] < 1e-12  # cos(≈π/2) ≈ 0: inhibited, never negative
    assert scores[2] == pytest.approx(0.0, abs=1e-12)


def row_entropy(weights: torch.Tensor) -> float:
    w = weights / weights.sum()
    return float(-(w * w.clamp_min(1e-300).log()).sum())


def attention_row(module: NaLaAttention | LinearAttention, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    fq, fk = module.feature_maps(q, k)  # (1, 1, 1, F), (1, 1, N, F)
    return (fq @ fk.transpose(-2, -1)).flatten()


def test_larger_query_norm_gives_sharper_rows() -> None:
    torch.manual_seed(0)
    nala = NaLaAttention(8, 1).double()
    direction = torch.randn(1, 1, 1, 8, dtype=torch.float64)
    direction = direction / direction.norm()
    k = torch.randn(1, 1, 64, 8, dtype=torch.float64)
    entropies = [row_entropy(attention_row(nala, scale * direction, k)) for scale in (0.1, 0.5, 1.0, 3.0)]
    assert all(a > b + 1e-3 for a, b in itertools.pairwise(entropies)), entropies
    # Same direction, so any norm-unaware map of q̂ would give equal rows; NaLa's differ a lot.
    assert entropies[0] - entropies[-1] > 0.1, entropies


def test_linear_attention_cancels_a_scale_on_the_query_features() -> None:
    # Classic linear attention: any scalar factor c on φ(q_i) cancels between numerator and
    # denominator, so it cannot express a temperature. NaLa puts the norm in the exponent instead.
    torch.manual_seed(0)
    linear = LinearAttention(8, 1).double()
    q = torch.randn(1, 1, 1, 8, dtype=torch.float64)
    k = torch.randn(1, 1, 64, 8, dtype=torch.float64)
    fq, fk = linear.feature_maps(q, k)
    rows = [(c * fq @ fk.transpose(-2, -1)).flatten() for c in (0.1, 1.0, 30.0)]
    rows = [r / r.sum() for r in rows]
    for row in rows[1:]:
        torch.testing.assert_close(row, rows[0], rtol=1e-12, atol=0)


def test_zero_query_and_key_vectors_give_finite_outputs() -> None:
    module = NaLaAttention(8, 2, beta=0.0, learnable=True)
    q = torch.zeros(1, 2, 4, 4, requires_grad=True)
    k = torch.zeros(1, 2, 4, 4, requires_grad=True)
    v = torch.randn(1, 2, 4, 4, requires_grad=True)
    out = module.attend(q, k, v, None)
    assert torch.equal(out, torch.zeros_like(out))  # no key has weight: 0 / (0 + ε)
    out.sum().backward()
    for t in (q, k, v, module.alpha, module.beta):
        assert t.grad is not None and torch.isfinite(t.grad).all()


def test_attend_computes_in_float32_and_returns_input_dtype() -> None:
    torch.manual_seed(0)
    module = NaLaAttention(16, 2)
    q, k, v = (torch.randn(2, 2, 300, 8).bfloat16() for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.attend(q, k, v, None)
    assert out.dtype == torch.bfloat16
    reference = module.attend(q.float(), k.float(), v.float(), None)
    torch.testing.assert_close(out.float(), reference, rtol=0, atol=float((reference.abs() * 2**-8).max()))


def test_value_conv_is_depthwise_kernel_5_and_changes_output() -> None:
    torch.manual_seed(0)
    plain = NaLaAttention(8, 2)
    torch.manual_seed(0)
    conv = NaLaAttention(8, 2, value_conv=True)
    assert plain.value_conv is None
    assert conv.value_conv is not None
    assert conv.value_conv.weight.shape == (8, 1, 5) and conv.value_conv.groups == 8
    x = torch.randn(1, 12, 8)
    v = conv.merge_heads(conv.split_heads(conv.v(x)))  # (B, L, D)
    expected = conv.out.weight @ conv.value_conv(v.transpose(1, 2)).squeeze(0)  # (D, L)
    torch.testing.assert_close(conv(x) - plain(x), expected.T.unsqueeze(0), rtol=1e-5, atol=1e-5)


def test_output_gate_is_layernorm_times_silu_gate() -> None:
    torch.manual_seed(0)
    gated = NaLaAttention(8, 2, output_gate=True)
    assert gated.gate is not None and gated.output_norm is not None
    x = torch.randn(2, 6, 8)
    y = gated.merge_heads(gated.attend(*(gated.split_heads(p(x)) for p in (gated.q, gated.k, gated.v)), None))
    expected = gated.out(torch.nn.functional.layer_norm(y, (8,)) * torch.nn.functional.silu(gated.gate(x)))
    torch.testing.assert_close(gated(x), expected, rtol=1e-6, atol=1e-6)


def test_output_norm_stands_without_the_gate() -> None:
    torch.manual_seed(0)
    normed = NaLaAttention(8, 2, output_norm=True)
    assert normed.gate is None and normed.output_norm is not None
    x = torch.randn(2, 6, 8)
    y = normed.merge_heads(normed.attend(*(normed.split_heads(p(x)) for p in (normed.q, normed.k, normed.v)), None))
    torch.testing.assert_close(normed(x), normed.out(torch.nn.functional.layer_norm(y, (8,))), rtol=1e-6, atol=1e-6)


def rotate_pairs(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoFormer's rotation written out per position and pair: (x_2i, x_2i+1) at position t turned by t·base^(−2i/F)."""
    out = x.clone()
    width = x.shape[-1]
    for t in range(x.shape[-2]):
        for i in range(width // 2):
            angle = torch.tensor(t * base ** (-2 * i / width), dtype=x.dtype)
            a, b = x[..., t, 2 * i], x[..., t, 2 * i + 1]
            out[..., t, 2 * i] = a * angle.cos() - b * angle.sin()
            out[..., t, 2 * i + 1] = a * angle.sin() + b * angle.cos()
    return out


@pytest.mark.parametrize("variant", ["relu_split", "cosine_inhibit"])
def test_rope_rotates_only_the_numerator_features(variant: str) -> None:
    """The released block's rotary positions: ψ = R φ per head_dim chunk in the numerator, plain φ in the normaliser."""
    torch.manual_seed(0)
    module = NaLaAttention(8, 2, rope=True, variant=variant).double()
    q, k, v = (torch.randn(2, 2, 7, 4, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[True] * 7, [True, True, False, True, True, False, False]])
    fq, fk = module.feature_maps(q, k, mask)  # (B, H, L, 2d)
    rq = torch.cat([rotate_pairs(chunk) for chunk in fq.split(4, -1)], -1)
    rk = torch.cat([rotate_pairs(chunk) for chunk in fk.split(4, -1)], -1)
    keys = mask[:, None, None, :].double()  # (B, 1, 1, L)
    count = mask.sum(-1).double()[:, None, None, None]
    numerator = (rq @ rk.transpose(-2, -1)) * keys / count
    normaliser = ((fq @ fk.transpose(-2, -1)) * keys / count).sum(-1, keepdim=True)
    expected = (numerator @ v) / (normaliser + module.eps)
    torch.testing.assert_close(module.attend(q, k, v, mask), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(module.attend_quadratic(q, k, v, mask), expected, rtol=1e-10, atol=1e-12)
    plain = NaLaAttention(8, 2, variant=variant).double()
    assert not torch.allclose(plain.attend(q, k, v, mask), expected)


@pytest.mark.parametrize("variant", ["relu_split", "cosine_inhibit"])
def test_rope_linear_form_gradients_match_the_quadratic_form(variant: str) -> None:
    torch.manual_seed(1)
    module = NaLaAttention(8, 2, rope=True, variant=variant, learnable=True).double()
    mask = torch.tensor([[True] * 9, [True, False, True, True, True, True, False, False, False]])
    q, k, v = (torch.randn(2, 2, 9, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    grads = []
    for form in (module.attend, module.attend_quadratic):
        out = form(q, k, v, mask)
        weights = torch.randn_like(out, generator=torch.Generator().manual_seed(2))
        grads.append(torch.autograd.grad((out * weights).sum(), (q, k, v, module.alpha, module.beta)))
    for linear, quadratic in zip(*grads, strict=True):
        torch.testing.assert_close(linear, quadratic, rtol=1e-8, atol=1e-10)


def test_the_released_block_depends_only_on_relative_positions() -> None:
    """nala_released: rotary numerator, LePE and gated norm all see only relative positions, so a sequence behind
    left padding gives exactly its own outputs (the masked padding holds other tokens)."""
    from lra.attention import NaLaReleasedAttention

    torch.manual_seed(0)
    block = NaLaReleasedAttention(8, 2).eval()
    assert block.rope and block.value_conv is not None and block.gate is not None and block.output_norm is not None
    x = torch.randn(1, 6, 8)
    shifted = torch.cat([torch.randn(1, 3, 8), x], dim=1)  # three padded positions in front
    mask = torch.tensor([[False] * 3 + [True] * 6])
    with torch.no_grad():
        torch.testing.assert_close(block(shifted, mask)[:, 3:], block(x), rtol=1e-5, atol=1e-6)
