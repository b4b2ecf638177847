"""The kernel attention op: linear_attention against its naive reference, and the reference against a loop."""

from __future__ import annotations

import pytest
import torch

from lra.attention.ops import linear_attention, quadratic_attention

B, H, L, F, E = 3, 2, 9, 5, 4  # feature width F, value width E
EPS = 1e-6


def features(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """Non-negative φ_q, φ_k (B, H, L, F) and v (B, H, L, E), with a zero query and a zero key feature row."""
    generator = torch.Generator().manual_seed(seed)
    fq = torch.rand(B, H, L, F, generator=generator, dtype=dtype)
    fk = torch.rand(B, H, L, F, generator=generator, dtype=dtype)
    v = torch.randn(B, H, L, E, generator=generator, dtype=dtype)
    fq[0, 1, 2] = 0.0  # a query that weights no key
    fk[1, 0, 3] = 0.0  # a key that no query weights
    return [t.requires_grad_() for t in (fq, fk, v)]


def holed_mask() -> torch.Tensor:
    """(B, L): a full row, right padding with a hole, and an all-padding row."""
    mask = torch.arange(L)[None, :] < torch.tensor([L, 6, 0])[:, None]
    mask[1, 2] = False
    return mask


def loop_reference(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """out_i = Σ_j a_ij v_j / (Σ_j a_ij + ε), a_ij = φ_q(q_i)·φ_k(k_j) / n over the n real keys, pair by pair."""
    out = torch.zeros_like(v)
    for b in range(B):
        keys = [j for j in range(L) if mask is None or bool(mask[b, j])]
        for h in range(H):
            for i in range(L):
                num, den = torch.zeros_like(v[b, h, 0]), 0.0
                for j in keys:
                    a = fq[b, h, i] @ fk[b, h, j] / max(len(keys), 1)
                    num, den = num + a * v[b, h, j], den + a
                out[b, h, i] = num / (den + EPS)
    return out


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "holes-and-empty-row"])
def test_quadratic_reference_is_the_pairwise_loop(masked: bool) -> None:
    fq, fk, v = (t.detach() for t in features(torch.float64))
    mask = holed_mask() if masked else None
    expected = loop_reference(fq, fk, v, mask)
    torch.testing.assert_close(quadratic_attention(fq, fk, v, mask, EPS), expected, rtol=1e-12, atol=1e-14)


def outputs_and_grads(
    blocks: int, quadratic: bool, mask: torch.Tensor | None, dtype: torch.dtype
) -> list[torch.Tensor]:
    """out and d(weighted out)/d(φ_q, φ_k, v); the linear op gets the features split into ``blocks`` blocks."""
    fq, fk, v = features(dtype)
    if quadratic:
        out = quadratic_attention(fq, fk, v, mask, EPS)
    else:
        sizes = [len(c) for c in torch.arange(F).tensor_split(blocks)]  # uneven widths, e.g. 2, 2, 1
        out = linear_attention(fq.split(sizes, -1), fk.split(sizes, -1), v, mask, EPS)
    weights = torch.linspace(-1.0, 2.0, out.numel(), dtype=dtype).view_as(out)
    return [out.detach(), *torch.autograd.grad((out * weights).sum(), (fq, fk, v))]


@pytest.mark.parametrize("blocks", [1, 2, 3])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "holes-and-empty-row"])
def test_linear_op_matches_the_reference_float64(blocks: int, masked: bool) -> None:
    mask = holed_mask() if masked else None
    fast = outputs_and_grads(blocks, False, mask, torch.float64)
    reference = outputs_and_grads(1, True, mask, torch.float64)
    for a, b in zip(fast, reference, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert all(g.abs().sum() > 0 for g in fast[1:])  # gradients really reach φ_q, φ_k and v


@pytest.mark.parametrize("blocks", [1, 3])
def test_linear_op_matches_the_reference_float32(blocks: int) -> None:
    mask = holed_mask()
    for a, b in zip(
        outputs_and_grads(blocks, False, mask, torch.float32),
        outputs_and_grads(1, True, mask, torch.float32),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_all_padding_row_gives_zeros_and_no_gradient() -> None:
    out, grad_fq, grad_fk, grad_v = outputs_and_grads(2, False, holed_mask(), torch.float64)
    assert torch.equal(out[2], torch.zeros_like(out[2]))  # no real key: 0 / (0 + ε)
    for grad in (grad_fq[2], grad_fk[2], grad_v[2]):
        assert torch.equal(grad, torch.zeros_like(grad))


def test_padded_keys_and_values_change_nothing() -> None:
    fq, fk, v = (t.detach() for t in features(torch.float64))
    mask = holed_mask()
    padded = ~mask[:, None, :, None]  # (B, 1, L, 1)
    fk2 = torch.where(padded, 1e6, fk)
    v2 = torch.where(padded, -1e6, v)
    out = linear_attention([fq], [fk], v, mask, EPS)
    torch.testing.assert_close(linear_attention([fq], [fk2], v2, mask, EPS), out, rtol=0, atol=0)
    # Right padding is the same as a shorter sequence: the second one cut to its length (hole kept).
    alone = linear_attention([fq[1:2, :, :6]], [fk[1:2, :, :6]], v[1:2, :, :6], mask[1:2, :6], EPS)
    torch.testing.assert_close(out[1:2, :, :6], alone, rtol=1e-12, atol=1e-14)


def test_linear_op_gradcheck() -> None:
    generator = torch.Generator().manual_seed(1)
    fq, fk = (torch.rand(2, 2, 5, 3, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(2, 2, 5, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True, True, False], [True] * 5])

    def op(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return linear_attention([fq[..., :2], fq[..., 2:]], [fk[..., :2], fk[..., 2:]], v, mask, EPS)

    assert torch.autograd.gradcheck(op, (fq, fk, v))


def test_block_counts_must_match() -> None:
    fq, fk, v = (t.detach() for t in features(torch.float32))
    with pytest.raises(ValueError, match=r"^linear_attention needs as many query as key feature blocks .*got 2 and 1$"):
        linear_attention([fq, fq], [fk], v, None, EPS)


def test_split_linear_op_matches_its_quadratic_reference() -> None:
    """Numerator from its own features (rotated ones, for NaLa's rope), normaliser from φ: outputs and gradients."""
    from lra.attention.ops import split_linear_attention, split_quadratic_attention

    generator = torch.Generator().manual_seed(3)
    psi_q, psi_k = (torch.randn(2, 2, 7, 6, dtype=torch.float64, generator=generator) for _ in range(2))
    fq, fk = (torch.rand(2, 2, 7, 6, dtype=torch.float64, generator=generator) + 0.1 for _ in range(2))
    v = torch.randn(2, 2, 7, 3, dtype=torch.float64, generator=generator)
    tensors = [t.requires_grad_() for t in (psi_q, psi_k, fq, fk, v)]
    mask = torch.tensor([[True] * 7, [True, False, True, True, True, True, False]])  # a hole and right padding
    linear = split_linear_attention(
        [psi_q[..., :3], psi_q[..., 3:]], [psi_k[..., :3], psi_k[..., 3:]], [fq], [fk], v, mask, 1e-6
    )
    quadratic = split_quadratic_attention(psi_q, psi_k, fq, fk, v, mask, 1e-6)
    torch.testing.assert_close(linear, quadratic, rtol=1e-10, atol=1e-12)
    weights = torch.randn_like(linear)
    for a, b in zip(
        torch.autograd.grad((linear * weights).sum(), tensors),
        torch.autograd.grad((quadratic * weights).sum(), tensors),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
