"""Performer (FAVOR+): unbiased softmax-kernel estimate, exact stabilisers, redraws, the projection buffer."""

from __future__ import annotations

import math

import pytest
import torch

from lra.attention import PerformerAttention, build_attention


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.softmax(scale * q @ k.transpose(-2, -1), -1) @ v  # (B, H, L, d)


def test_kernel_estimate_averaged_over_draws_is_softmax_attention() -> None:
    # E[φ(q)·φ(k)] = exp(q·k / √d): averaging the estimates over many feature draws and normalising
    # rows gives exact softmax attention. A wrong temperature (±25%, or 1/d) is visibly further off.
    torch.manual_seed(0)
    d = 4
    q, k, v = (torch.randn(1, 2, 8, d, dtype=torch.float64) for _ in range(3))
    q, k = 0.7 * q, 0.7 * k
    module = PerformerAttention(2 * d, 2, num_features=64).double()
    draws = 300
    estimate = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    for _ in range(draws):
        module.redraw_features()
        estimate += module.kernel_estimate(q[..., :, None, :], k[..., None, :, :]) / draws  # (B, H, L, L)
    exact = (q @ k.transpose(-2, -1) / math.sqrt(d)).exp()
    relative = lambda a: float(((a - exact) / exact).abs().mean())  # noqa: E731
    assert relative(estimate) < 0.04
    for wrong in (1.25 / math.sqrt(d), 0.8 / math.sqrt(d), 1 / d):
        assert relative((q @ k.transpose(-2, -1) * wrong).exp()) > 0.04
    out = (estimate / estimate.sum(-1, keepdim=True)) @ v
    error = lambda a: float((out - a).abs().mean())  # noqa: E731
    assert error(softmax_attention(q, k, v, 1 / math.sqrt(d))) < 0.012
    for wrong in (1.25 / math.sqrt(d), 0.8 / math.sqrt(d), 1 / d):
        assert error(softmax_attention(q, k, v, wrong)) > 0.012


def test_attend_is_the_normalised_kernel_estimate_whatever_the_stabilisers() -> None:
    # The stabilisers (one per query, one per sequence and head over the real keys) must cancel: the
    # linear form equals rows of exp-kernel estimates normalised over the real keys, also when one
    # sequence of the batch has huge keys and another has padding.
    torch.manual_seed(0)
    module = PerformerAttention(8, 2, num_features=32).double()
    q, k, v = (torch.randn(3, 2, 7, 4, dtype=torch.float64) for _ in range(3))
    k[1] *= 6.0  # large logits in one sequence only
    mask = torch.arange(7)[None, :] < torch.tensor([7, 7, 4])[:, None]  # (B, L)
    a = module.kernel_estimate(q[..., :, None, :], k[..., None, :, :]) * mask[:, None, None, :]  # (B, H, L, L)
    expected = (a / a.sum(-1, keepdim=True)) @ v
    for attend in (module.attend, module.attend_quadratic):
        torch.testing.assert_close(attend(q, k, v, mask), expected, rtol=1e-5, atol=1e-8)
    # Each sequence alone gives the same rows: no stabiliser is shared across the batch.
    alone = module.attend(q[2:, :, :4], k[2:, :, :4], v[2:, :, :4], None)
    torch.testing.assert_close(module.attend(q, k, v, mask)[2:, :, :4], alone, rtol=1e-6, atol=1e-9)


def test_padded_keys_do_not_move_the_key_stabiliser() -> None:
    torch.manual_seed(0)
    module = PerformerAttention(8, 2, num_features=16).double()
    q, k = (torch.randn(2, 2, 7, 4, dtype=torch.float64) for _ in range(2))
    mask = torch.arange(7)[None, :] < torch.tensor([7, 5])[:, None]  # (B, L)
    fq, fk = module.feature_maps(q, k, mask)
    # Padded keys at the longest projection row: x' = w maximises w·x' − ‖x'‖²/2, so these padded
    # keys would own the largest logit of their sequence, and the stabiliser if it looked at them.
    w = module.projection[module.projection.norm(dim=-1).argmax()]  # (d,)
    k_other = k.clone()
    k_other[1, :, 5:] = w * 4**0.25
    fq_other, fk_other = module.feature_maps(q, k_other, mask)
    assert torch.equal(fk_other[1, :, :5], fk[1, :, :5]) and torch.equal(fq_other, fq)
    assert torch.equal(fk[1, :, 5:], torch.zeros_like(fk[1, :, 5:]))  # padded keys: no weight
    real_max = fk[1, :, :5].amax((-2, -1))  # (H,): the stabiliser is the max over real keys
    torch.testing.assert_close(real_max, torch.ones_like(real_max), rtol=0, atol=0)


def test_peaked_features_keep_the_denominator_away_from_eps() -> None:
    # Long queries and keys make the features very peaked; with a denominator near ε the output would
    # shrink towards 0. The per-query stabiliser keeps φ_q·z ≥ 1, so the rows still sum to one.
    torch.manual_seed(0)
    module = PerformerAttention(8, 1, num_features=128)
    q, k = (8.0 * torch.randn(1, 1, 64, 8) for _ in range(2))
    v = torch.ones(1, 1, 64, 8)
    out = module.attend(q, k, v, None)
    torch.testing.assert_close(out, torch.ones_like(out), rtol=1e-5, atol=1e-5)
    fq, fk = module.feature_maps(q, k)
    assert float((fq @ fk.mean(-2, keepdim=True).transpose(-2, -1)).min()) >= 1.0 - 1e-5


def run_training_calls(module: PerformerAttention, calls: int) -> list[torch.Tensor]:
    """The projection seen by each of ``calls`` forward passes."""
    seen = []
    for _ in range(calls):
        module(torch.randn(1, 5, 8))
        seen.append(module.projection.clone())
    return seen


def test_redraw_every_interval_training_passes_and_never_in_eval() -> None:
    torch.manual_seed(0)
    module = PerformerAttention(8, 2, num_features=16, redraw_interval=3)
    first = module.projection.clone()
    seen = run_training_calls(module, 7)
    # Passes 1-3 use the initial draw, 4-6 a second one, 7 a third.
    for p in seen[:3]:
        assert torch.equal(p, first)
    assert not torch.equal(seen[3], first)
    assert torch.equal(seen[4], seen[3]) and torch.equal(seen[5], seen[3])
    assert not torch.equal(seen[6], seen[3])
    module.eval()
    x = torch.randn(2, 5, 8)
    outputs = [module(x) for _ in range(10)]
    assert torch.equal(module.projection, seen[6])  # eval never redraws nor counts
    assert all(torch.equal(out, outputs[0]) for out in outputs)
    module.train()
    later = run_training_calls(module, 3)
    assert torch.equal(later[0], seen[6]) and torch.equal(later[1], seen[6])  # passes 8, 9
    assert not torch.equal(later[2], seen[6])  # pass 10 starts the fourth draw


def test_redraw_interval_zero_never_redraws() -> None:
    torch.manual_seed(0)
    module = PerformerAttention(8, 2, num_features=16, redraw_interval=0)
    first = module.projection.clone()
    assert all(torch.equal(p, first) for p in run_training_calls(module, 5))


def test_projection_is_a_buffer_in_the_state_dict() -> None:
    torch.manual_seed(0)
    trained = PerformerAttention(8, 2, num_features=16)
    torch.manual_seed(1)
    fresh = PerformerAttention(8, 2, num_features=16)
    assert "projection" in trained.state_dict() and not any(n == "projection" for n, _ in trained.named_parameters())
    assert trained.projection.shape == (16, 4)
    x = torch.randn(2, 5, 8)
    assert not torch.allclose(fresh(x), trained(x))
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh(x), trained(x), rtol=0, atol=0)


def test_redraw_keeps_the_buffer_dtype() -> None:
    module = PerformerAttention(8, 2, num_features=16).double()
    module.redraw_features()
    assert module.projection.dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_features": 0}, "performer: num_features must be >= 1, got 0"),
        ({"redraw_interval": -1}, r"performer: redraw_interval must be >= 0 \(0: never redraw\), got -1"),
        ({"eps": 0.0}, "performer: eps must be > 0, got 0.0"),
    ],
)
def test_performer_rejects_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        build_attention("performer", 8, 2, kwargs)
