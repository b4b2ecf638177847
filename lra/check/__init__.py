"""`lra check NAME ...`: checks to run before training, e.g. `lra check attention` (the conformance kit)."""

from __future__ import annotations

from lra.dispatch import Command, dispatch

CHECKS = {
    "attention": Command(
        "lra.check.attention:main", "the conformance kit on an attention (built-in, import path or entry point)"
    ),
}


def main(argv: list[str]) -> int:
    """Run the check argv[0] names on the rest of argv (`lra check --help` lists them)."""
    return dispatch("lra check", CHECKS, argv)
