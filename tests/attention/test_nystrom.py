"""Nyströmformer specifics: the iterative pseudo-inverse, segment-mean landmarks, exactness, padding, the conv skip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lra.attention import NystromAttention, SoftmaxAttention, build_attention
from lra.attention.nystrom import iterative_pinv, landmark_segments, nystrom_mix, segment_means

DIM, HEADS = 8, 2


def padded_mask(lengths: list[int], total: int) -> torch.Tensor:
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]  # (B, L)


def softmax_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Exact softmax attention over the real keys; q already scaled by d^−½."""
    logits = (q @ k.transpose(-2, -1)).masked_fill(~keep[:, None, None, :], float("-inf"))  # (B, H, L, L)
    return logits.softmax(-1) @ v


def test_iterative_pinv_matches_torch_pinv() -> None:
    torch.manual_seed(0)
    eye = torch.eye(16, dtype=torch.float64)
    # Well-conditioned softmax matrices (a dominant diagonal): the paper's 6 iterations already converge.
    a = (torch.randn(3, 2, 16, 16, dtype=torch.float64) + 6.0 * eye).softmax(-1)
    torch.testing.assert_close(iterative_pinv(a, 6), torch.linalg.pinv(a), rtol=1e-8, atol=1e-10)
    # Ill-conditioned ones (random logits, condition numbers up to ~1e4) need more iterations.
    a = torch.randn(3, 2, 16, 16, dtype=torch.float64).softmax(-1)
    assert torch.linalg.cond(a).max() > 100
    torch.testing.assert_close(iterative_pinv(a, 40), torch.linalg.pinv(a), rtol=1e-8, atol=1e-8)
    # A singular matrix (two identical tokens): the iteration converges to the pseudo-inverse.
    x = torch.randn(1, 1, 8, 4, dtype=torch.float64)
    x[..., 3, :] = x[..., 2, :]
    a = (x @ x.transpose(-2, -1)).softmax(-1)
    assert int(torch.linalg.matrix_rank(a)) == 7
    torch.testing.assert_close(iterative_pinv(a, 60), torch.linalg.pinv(a), rtol=1e-8, atol=1e-8)
    # An identity block for empty landmarks keeps the result block-diagonal: pinv of the real block alone.
    block = torch.block_diag(a[0, 0, :5, :5], torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(iterative_pinv(block, 60)[:5, :5], torch.linalg.pinv(a[0, 0, :5, :5]))


def test_landmarks_are_means_over_contiguous_runs_of_real_tokens() -> None:
    keep = torch.tensor(
        [
            [True] * 10 + [False] * 3,  # n = 10, m = 4: runs of 3, 2, 3, 2 real tokens
            [True, True, False, True, True, True, True, True, True, True, True, False, False],  # a hole: n = 10
            [True] * 3 + [False] * 10,  # n = 3 < m: each real token is a landmark, the 4th is empty
        ]
    )
    segments = landmark_segments(keep, 4)
    pad = 4  # padded tokens go to the dropped slot m
    assert segments.tolist() == [
        [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, pad, pad, pad],
        [0, 0, pad, 0, 1, 1, 2, 2, 2, 3, 3, pad, pad],
        [0, 1, 2, pad, pad, pad, pad, pad, pad, pad, pad, pad, pad],
    ]
    x = torch.randn(3, 1, 13, 2, dtype=torch.float64)
    x_other = torch.where(keep[:, None, :, None], x, 1e6)  # padded content must not matter
    real = keep.to(torch.float64)
    sizes = real.new_zeros(3, 5).scatter_add(1, segments, real)[:, :4]
    assert sizes.tolist() == [[3, 2, 3, 2], [3, 2, 3, 2], [1, 1, 1, 0]]
    means = segment_means(x_other, segments, sizes)  # (B, 1, 4, 2)
    torch.testing.assert_close(means[0, 0, 1], x[0, 0, 3:5].mean(0))
    torch.testing.assert_close(means[1, 0, 0], x[1, 0, [0, 1, 3]].mean(0))
    torch.testing.assert_close(means[2, 0, :3], x[2, 0, :3])
    assert torch.equal(means[2, 0, 3], torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("extra", [0, 3], ids=["m=L", "m>L"])
def test_nystrom_formula_is_exact_with_a_landmark_per_token(extra: int) -> None:
    # The Nyström formula itself (the short-sequence shortcut off), with a converged pseudo-inverse: every
    # landmark is one token, so softmax(QK̃ᵀ) pinv(softmax(Q̃K̃ᵀ)) softmax(Q̃Kᵀ) = A A⁺ A = A, including the
    # padded sequence whose surplus landmarks are empty.
    torch.manual_seed(0)
    n = 9
    q, k, v = (torch.randn(2, HEADS, n, 4, dtype=torch.float64) for _ in range(3))
    q = q * 0.5
    keep = padded_mask([n, 5], n)
    out = nystrom_mix(q, k, v, keep, n + extra, iterations=60, exact_when_short=False)
    expected = softmax_reference(q, k, v, keep)
    real = keep[:, None, :, None].expand_as(out)  # real queries only
    torch.testing.assert_close(out[real], expected[real], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("padded", [False, True], ids=["no-mask", "padded"])
def test_module_equals_softmax_with_as_many_landmarks_as_tokens(padded: bool) -> None:
    # With n <= num_landmarks every real token is a landmark and the module returns exact softmax attention
    # (conv off), whatever the number of pseudo-inverse iterations.
    torch.manual_seed(0)
    nystrom = NystromAttention(DIM, HEADS, num_landmarks=11, conv_kernel=None).double()
    softmax = SoftmaxAttention(DIM, HEADS).double()
    softmax.load_state_dict(nystrom.state_dict())
    x = torch.randn(3, 11, DIM, dtype=torch.float64)
    mask = padded_mask([11, 6, 1], 11) if padded else None
    expected, out = softmax(x, mask), nystrom(x, mask)
    real = mask if mask is not None else torch.ones(3, 11, dtype=torch.bool)
    torch.testing.assert_close(out[real], expected[real], rtol=1e-10, atol=1e-12)


def test_approximation_error_shrinks_with_more_landmarks() -> None:
    # Smooth (position-correlated) queries and keys, as segment means assume: the error falls with m.
    torch.manual_seed(0)
    steps = torch.randn(1, HEADS, 256, 4, dtype=torch.float64).cumsum(-2) / 16  # random walks
    q, k, v = steps, steps.roll(1, -1), torch.randn(1, HEADS, 256, 4, dtype=torch.float64)
    keep = torch.ones(1, 256, dtype=torch.bool)
    reference = softmax_reference(q, k, v, keep)
    errors = [(nystrom_mix(q, k, v, keep, m, 6) - reference).abs().mean().item() for m in (4, 16, 64)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1 * reference.abs().mean().item()


def test_padding_invariance_on_the_nystrom_path_with_the_conv() -> None:
    # The contract tests use short sequences (every token a landmark); here n > num_landmarks.
    torch.manual_seed(0)
    module = NystromAttention(DIM, HEADS, num_landmarks=4, conv_kernel=5)
    mask = padded_mask([13, 7, 3], 13)
    mask[0, 5] = False  # a hole
    x = torch.randn(3, 13, DIM)
    x_other = torch.where(mask[..., None], x, 50.0 * torch.randn_like(x))
    out, out_other = module(x, mask), module(x_other, mask)
    torch.testing.assert_close(out[mask], out_other[mask], rtol=1e-5, atol=1e-6)
    for row, length in ((1, 7), (2, 3)):  # right-padded == alone, on the Nyström path and the short one
        torch.testing.assert_close(module(x[row : row + 1, :length])[0], out[row, :length], rtol=1e-5, atol=1e-6)


def test_conv_skip_adds_a_per_head_convolution_of_the_real_values() -> None:
    torch.manual_seed(0)
    with_conv = NystromAttention(DIM, HEADS, num_landmarks=4, conv_kernel=3)
    without = NystromAttention(DIM, HEADS, num_landmarks=4, conv_kernel=None)
    without.load_state_dict({k: v for k, v in with_conv.state_dict().items() if not k.startswith("conv")})
    assert with_conv.conv is not None and with_conv.conv.weight.shape == (HEADS, 1, 3, 1)
    q, k, v = (torch.randn(2, HEADS, 10, DIM // HEADS) for _ in range(3))
    mask = padded_mask([10, 6], 10)
    w = with_conv.conv.weight[:, 0, :, 0]  # (H, 3)
    real_v = v * mask[:, None, :, None]
    padded_v = F.pad(real_v, (0, 0, 1, 1))  # zero borders
    skip = sum(w[None, :, j, None, None] * padded_v[:, :, j : j + 10] for j in range(3))  # (B, H, L, d)
    torch.testing.assert_close(with_conv.attend(q, k, v, mask), without.attend(q, k, v, mask) + skip)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_landmarks": 0}, "nystrom: num_landmarks must be >= 1, got 0"),
        ({"pinv_iterations": -1}, "nystrom: pinv_iterations must be >= 0, got -1"),
        ({"conv_kernel": 4}, "nystrom: conv_kernel must be a positive odd integer or null, got 4"),
        ({"conv_kernel": 0}, "nystrom: conv_kernel must be a positive odd integer or null, got 0"),
    ],
)
def test_rejects_bad_values(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as err:
        build_attention("nystrom", 8, 2, kwargs)
    assert str(err.value) == message
