"""PolaFormer: both forms against the paper's equations written out, polarity halves, learnable powers."""

from __future__ import annotations

import pytest
import torch

from lra.attention import PolaFormerAttention, build_attention


def paper_polaformer(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, theta: torch.Tensor, alpha: float, lengths: list[int], eps: float
) -> torch.Tensor:
    """PolaFormer's attention written from arXiv 2501.15061 (section 4): O(L²), one kernel per value half.

    q = q⁺ − q⁻, k = k⁺ − k⁻ (ReLU of ±x); every part goes through g(x) = x^p with the learnable
    channel-wise power p = 1 + α·sigmoid(θ). Same-sign scores s_ij = Σ_c g(q⁺_ic) g(k⁺_jc) + g(q⁻_ic) g(k⁻_jc)
    weight the first half of the value channels, opposite-sign scores o_ij = Σ_c g(q⁺_ic) g(k⁻_jc)
    + g(q⁻_ic) g(k⁺_jc) the second half; each row is normalised over the sequence's real keys
    (sums divided by their number, as in the harness's linear form, so that ε acts alike).
    """
    p = 1.0 + alpha * torch.sigmoid(theta)  # (H, 1, d)
    g = lambda x: torch.relu(x) ** p  # noqa: E731
    q_pos, q_neg, k_pos, k_neg = g(q), g(-q), g(k), g(-k)  # (B, H, L, d) each
    same = torch.einsum("bhic,bhjc->bhij", q_pos, k_pos) + torch.einsum("bhic,bhjc->bhij", q_neg, k_neg)
    opposite = torch.einsum("bhic,bhjc->bhij", q_pos, k_neg) + torch.einsum("bhic,bhjc->bhij", q_neg, k_pos)
    half = v.shape[-1] - v.shape[-1] // 2
    outs = []
    for scores, values in ((same, v[..., :half]), (opposite, v[..., half:])):
        rows = []
        for b, n in enumerate(lengths):
            a = scores[b, :, :, :n] / n  # (H, L, n)
            rows.append((a @ values[b, :, :n]) / (a.sum(-1, keepdim=True) + eps))
        outs.append(torch.stack(rows))
    return torch.cat(outs, -1)  # (B, H, L, d)


@pytest.mark.parametrize("head_dim", [4, 3])
@pytest.mark.parametrize("padded", [False, True], ids=["no-mask", "padded"])
def test_both_forms_match_the_paper_equations(padded: bool, head_dim: int) -> None:
    torch.manual_seed(0)
    module = PolaFormerAttention(2 * head_dim, 2, alpha=3.0).double()
    with torch.no_grad():
        module.power.normal_()  # powers differ by head and channel
    q, k, v = (torch.randn(2, 2, 9, head_dim, dtype=torch.float64) for _ in range(3))
    q[0, 0, 1, 0] = 0.0  # a zero coordinate: no polarity, no weight
    lengths = [9, 5] if padded else [9, 9]
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None] if padded else None
    weights = torch.linspace(-1.0, 2.0, v.numel(), dtype=torch.float64).view_as(v)

    def outputs_and_grads(attend: object) -> list[torch.Tensor]:
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        if attend is None:
            out = paper_polaformer(*inputs, module.power, module.alpha, lengths, module.eps)
        else:
            out = attend(*inputs, mask)  # type: ignore[operator]
        grads = torch.autograd.grad((out * weights).sum(), [*inputs, module.power])
        return [out, *grads]

    expected = outputs_and_grads(None)
    for attend in (module.attend, module.attend_quadratic):
        for a, b in zip(outputs_and_grads(attend), expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert expected[-1].abs().sum() > 0  # the powers really learn


def test_same_sign_and_opposite_sign_halves_by_hand() -> None:
    # α = 2, θ = 0: p = 2. q = [2, -1]: q⁺ = [2, 0], q⁻ = [0, 1].
    # k1 = [1, -3]: same = 2²·1² + 1²·3² = 13, opposite = 2²·0 + 1²·0 = 0.
    # k2 = [-1, 2]: same = 0, opposite = g(q⁺)·g(k2⁻) + g(q⁻)·g(k2⁺) = 4·1 + 1·4 = 8.
    # So the first value channel (same-sign half) is k1's, the second (opposite-sign half) is k2's.
    module = PolaFormerAttention(2, 1, alpha=2.0, eps=1e-12).double()
    q = torch.tensor([[[[2.0, -1.0]]]], dtype=torch.float64)
    k = torch.tensor([[[[1.0, -3.0], [-1.0, 2.0]]]], dtype=torch.float64)
    v = torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]], dtype=torch.float64)
    for attend in (module.attend, module.attend_quadratic):
        torch.testing.assert_close(attend(q, k, v, None), torch.tensor([[[[10.0, 40.0]]]], dtype=torch.float64))
    fq, fk = module.feature_maps(q, k)  # the same-sign kernel: [q⁺^p, q⁻^p]·[k⁺^p, k⁻^p]
    torch.testing.assert_close((fq @ fk.transpose(-2, -1)).flatten(), torch.tensor([13.0, 0.0], dtype=torch.float64))


def test_power_starts_at_one_plus_half_alpha_and_stays_in_range() -> None:
    module = PolaFormerAttention(8, 2, alpha=3.0)
    assert module.power.shape == (2, 1, 4)  # per head and channel
    torch.testing.assert_close(module.exponents(torch.float32), torch.full((2, 1, 4), 2.5))
    with torch.no_grad():
        module.power.copy_(torch.tensor([-50.0, 50.0]).repeat(4).view(2, 1, 4))
    p = module.exponents(torch.float64).detach()
    assert float(p.min()) >= 1.0 and float(p.max()) <= 4.0


def test_learned_powers_sharpen_rows() -> None:
    # A larger power raises large scores more than small ones: lower-entropy rows (the paper's claim).
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 32, 8)
    entropies = []
    for theta in (-4.0, 0.0, 4.0):
        module = PolaFormerAttention(8, 1)
        with torch.no_grad():
            module.power.fill_(theta)
        fq, fk = module.feature_maps(q, k)
        row = (fq @ fk.transpose(-2, -1)).detach().flatten()
        row = row / row.sum()
        entropies.append(float(-(row * row.clamp_min(1e-30).log()).sum()))
    assert entropies[0] > entropies[1] > entropies[2]


def test_polaformer_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"^polaformer: alpha must be > 0, got 0\.0$"):
        build_attention("polaformer", 8, 2, {"alpha": 0.0})
    with pytest.raises(ValueError, match=r"^polaformer: eps must be > 0, got -1\.0$"):
        build_attention("polaformer", 8, 2, {"eps": -1.0})
