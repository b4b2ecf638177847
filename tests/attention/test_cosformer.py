"""cosFormer: the cos re-weighting against an explicit O(L²) loop, and each sequence's own length M."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lra.attention import CosFormerAttention, build_attention
from lra.attention.feature_maps import cos_angles


def explicit_cosformer(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: list[int], eps: float
) -> torch.Tensor:
    """out_i = Σ_j w_ij v_j / Σ_j w_ij over the first ``lengths[b]`` keys, one pair at a time.

    w_ij = relu(q_i)·relu(k_j) · cos(π/2 · (i − j) / M), M = the sequence's number of real tokens
    (arXiv 2202.08791, eq. 9-10). Sums are divided by M as in the harness's linear form (ε acts alike).
    """
    b_size, heads, length, _ = q.shape
    out = torch.zeros_like(v)
    for b in range(b_size):
        m = lengths[b]
        for h in range(heads):
            for i in range(length):
                num, den = torch.zeros_like(v[b, h, 0]), 0.0
                for j in range(m):
                    w = torch.relu(q[b, h, i]) @ torch.relu(k[b, h, j]) * math.cos(math.pi / 2 * (i - j) / m)
                    num, den = num + w * v[b, h, j], den + w
                out[b, h, i] = (num / m) / (den / m + eps)
    return out


@pytest.mark.parametrize("padded", [False, True], ids=["no-mask", "padded"])
def test_cos_reweighting_matches_the_explicit_loop(padded: bool) -> None:
    torch.manual_seed(0)
    module = CosFormerAttention(8, 2).double()
    q, k, v = (torch.randn(2, 2, 9, 4, dtype=torch.float64) for _ in range(3))
    lengths = [9, 5] if padded else [9, 9]
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None] if padded else None
    expected = explicit_cosformer(q, k, v, lengths, module.eps)
    real = (torch.arange(9)[None, :] < torch.tensor(lengths)[:, None])[:, None, :, None].expand_as(v)
    for attend in (module.attend, module.attend_quadratic):
        out = attend(q, k, v, mask)
        torch.testing.assert_close(out[real], expected[real], rtol=1e-10, atol=1e-12)


def test_m_is_the_sequence_length_not_the_padded_length() -> None:
    # With M = 9 (the padded length) instead of the sequence's 5 the weights differ: the test above
    # would notice, and so does a direct comparison.
    torch.manual_seed(0)
    module = CosFormerAttention(8, 2).double()
    q, k, v = (torch.randn(1, 2, 9, 4, dtype=torch.float64) for _ in range(3))
    mask = torch.arange(9)[None, :] < 5
    out = module.attend(q, k, v, mask)[..., :5, :]
    torch.testing.assert_close(out, explicit_cosformer(q, k, v, [5], module.eps)[..., :5, :], rtol=1e-10, atol=1e-12)
    alone = explicit_cosformer(q[..., :5, :], k[..., :5, :], v[..., :5, :], [5], module.eps)
    torch.testing.assert_close(out, alone, rtol=1e-10, atol=1e-12)  # the same as the sequence alone
    theta9 = cos_angles(None, 9, torch.device("cpu"), torch.float64)  # M = 9
    theta5 = cos_angles(mask, 9, torch.device("cpu"), torch.float64)  # M = 5
    assert not torch.allclose(theta9[..., :5, :], theta5[..., :5, :])


def test_weights_are_nonnegative_and_decay_with_distance() -> None:
    module = CosFormerAttention(2, 1).double()
    q = torch.ones(1, 1, 6, 2, dtype=torch.float64)
    k = torch.ones(1, 1, 6, 2, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True, True, True]])  # a hole: 5 real tokens over 6 positions
    fq, fk = module.feature_maps(q, k, mask)  # (1, 1, 6, 4) each
    a = (fq @ fk.transpose(-2, -1))[0, 0]  # (L, L): relu(q)·relu(k) = 2 times cos(θ_i − θ_j)
    assert float(a.min()) > 0
    row = a[0, [0, 2, 3, 4, 5]]  # query 1 against the real keys at distances 0, 2, 3, 4, 5
    assert all(x > y for x, y in itertools.pairwise(row))
    torch.testing.assert_close(a[0, 0], torch.tensor(2.0, dtype=torch.float64))


def test_relu_features_drop_negative_coordinates() -> None:
    module = CosFormerAttention(2, 1).double()
    q = torch.tensor([[[[1.0, -2.0]]]], dtype=torch.float64)
    k = torch.tensor([[[[-3.0, 4.0]], [[0.5, 1.0]]]], dtype=torch.float64).transpose(1, 2)  # (1, 1, 2, 2)
    fq, fk = module.feature_maps(q.expand(1, 1, 2, 2), k, None)
    a = fq @ fk.transpose(-2, -1)  # relu(q)·relu(k1) = 0, relu(q)·relu(k2) = 0.5
    assert float(a[0, 0, 0, 0]) == 0.0
    assert float(a[0, 0, 0, 1]) == pytest.approx(0.5 * math.cos(math.pi / 2 * (0 - 1) / 2))


def test_cosformer_rejects_bad_eps() -> None:
    with pytest.raises(ValueError, match=r"^cosformer: eps must be > 0, got 0\.0$"):
        build_attention("cosformer", 8, 2, {"eps": 0.0})
