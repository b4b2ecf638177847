"""The conformance kit: every built-in encoder passes it (the attention contract for every registry entry), and its
measuring rules do what they say."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from lra.attention import ATTENTIONS, SoftmaxAttention
from lra.check.conformance import CHECKS, CLOSE, Subject, Tolerance, max_error, run_checks, table

# Every registry entry with its defaults, plus NaLa with its optional parts and its other variant.
CONFIGS: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in sorted(ATTENTIONS)] + [
    ("nala", {"value_conv": True, "output_gate": True}),
    ("nala", {"variant": "cosine_inhibit", "learnable": True}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in kwargs.items()) for name, kwargs in CONFIGS]
NO_QUADRATIC_FORM = {"softmax", "nystrom"}  # exact or landmark attentions: every other one is a kernel attention


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_every_built_in_encoder_passes_the_kit(name: str, kwargs: dict[str, Any]) -> None:
    results = run_checks(Subject(name, kwargs, dim=16, heads=2))
    assert [r.check for r in results] == [check.format(long_length=4096) for check, _, _ in CHECKS]
    assert not [r for r in results if r.failed], table(results)
    skipped = [r.check for r in results if r.status == "skip"]
    assert skipped == (["linear vs quadratic"] if name in NO_QUADRATIC_FORM else []), table(results)


def test_max_error_uses_assert_close_rule_and_fails_non_finite_values() -> None:
    reference = torch.tensor([1.0, 100.0, 0.0])
    tolerance = Tolerance(rtol=0.01, atol=0.1)
    # |Δ| ≤ 0.1 + 0.01·|ref| element-wise: 1.05 is within 0.1 + 1.0 at 100, 0.11 is not within 0.1 at 0.
    assert max_error(reference + torch.tensor([0.09, 1.05, 0.05]), reference, tolerance) == (
        pytest.approx(1.05, abs=1e-5),
        True,
    )
    assert max_error(reference + torch.tensor([0.0, 0.0, 0.11]), reference, tolerance)[1] is False
    assert max_error(torch.tensor([1.0, float("nan"), 0.0]), reference, tolerance) == (float("inf"), False)
    assert str(CLOSE) == "|Δ| ≤ 1e-06 + 1e-05·|ref|"


class GatedBranch(SoftmaxAttention):
    """Softmax plus a branch behind a zero-initialised gate: at initialisation the branch's weights get an all-zero
    gradient, which is not a bug (the gate opens with training)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__(dim, heads)
        self.branch = nn.Linear(dim, dim)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return super().forward(x, mask) + self.gate * self.branch(x)


def test_a_zero_initialised_gate_is_not_a_missing_gradient() -> None:
    results = {r.check: r for r in run_checks(Subject(GatedBranch, dim=16, heads=2, long_length=256))}
    assert results["gradients reach every parameter"].status == "pass"
    assert results["gradients reach every parameter"].measured == "11/11 parameters"


class FailsWhenLong(SoftmaxAttention):
    """Softmax that raises beyond 1000 tokens, like a kernel with a hard-coded block limit."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        if q.shape[-2] > 1000:
            raise RuntimeError("sequence longer than the kernel's 1000-token block\nsecond line")
        return super().attend(q, k, v, mask)


def test_an_exception_inside_a_check_is_that_checks_failure_with_its_message() -> None:
    results = run_checks(Subject(FailsWhenLong, dim=16, heads=2, long_length=2048))
    failed = [r for r in results if r.failed]
    assert [(r.check, r.measured) for r in failed] == [("length 2048", "raised")]
    assert failed[0].problem == "raised RuntimeError: sequence longer than the kernel's 1000-token block"
    assert "FAIL length 2048: raised RuntimeError: sequence longer" in table(results)
