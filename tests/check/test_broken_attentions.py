"""Deliberately broken attentions (tests/helpers/attentions.py), each caught by the conformance kit with a
message naming the failed check; a correct user attention passes."""

from __future__ import annotations

import pytest

from lra.check.conformance import Subject, run_checks, table

FIXTURES = "helpers.attentions"

# attention -> {failed check: the start of its reason}; every other check must pass (or skip).
BROKEN = {
    "AttendsToPadding": {
        "padding: holes": "real outputs change when only padded positions change: padding leaks in",
        "padding: right": "real outputs change when only padded positions change: padding leaks in",
    },
    "NaNUnderBf16": {"bf16 autocast": "the output has NaN or inf"},
    "DisagreeingForms": {"linear vs quadratic": "the linear form disagrees with attend_quadratic"},
    "UnusedTemperature": {
        "gradients reach every parameter": "no gradient reaches temperature (unused, detached or under no_grad)",
        "gradients: finite differences": "gradients disagree with finite differences",
    },
    "WrongBackward": {"gradients: finite differences": "gradients disagree with finite differences"},
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_attention_fails_the_check_for_its_mistake(name: str) -> None:
    results = run_checks(Subject(f"{FIXTURES}:{name}", dim=16, heads=2, long_length=512))
    failed = {r.check: r.problem for r in results if r.failed}
    assert set(failed) == set(BROKEN[name]), table(results)
    for check, reason in BROKEN[name].items():
        assert failed[check].startswith(reason), table(results)
        assert f"FAIL {check}: {reason}" in table(results)


def test_the_measured_error_is_reported_with_the_failure() -> None:
    results = {r.check: r for r in run_checks(Subject(f"{FIXTURES}:DisagreeingForms", dim=16, heads=2))}
    quadratic = results["linear vs quadratic"]
    error = float(quadratic.measured.split()[2])
    assert error > 1e-2  # far outside the 1e-06 tolerance, not a rounding matter
    assert results["padding: holes"].status == "pass" and results["padding: holes"].measured.startswith("max |Δ|")


@pytest.mark.parametrize("name", ["TemperedLinear", "Plain"])
def test_a_correct_user_attention_passes(name: str) -> None:
    results = run_checks(Subject(f"{FIXTURES}:{name}", {}, dim=16, heads=2, long_length=512))
    assert not [r for r in results if r.failed], table(results)
    quadratic = next(r for r in results if r.check == "linear vs quadratic")
    # A kernel attention built from a feature map alone gets its quadratic reference from KernelAttention.
    assert quadratic.status == ("pass" if name == "TemperedLinear" else "skip")
