"""`lra bench NAME ...`: benchmark commands that measure side by side in one run and print ratios."""

from __future__ import annotations

import importlib

BENCHMARKS = {
    "attention": "lra.bench.attention",
    "listops": "lra.bench.listops",
    "pathfinder": "lra.bench.pathfinder",
    "train": "lra.bench.train",
}


def main(argv: list[str]) -> int:
    """Dispatch to a benchmark's own `main(argv)`."""
    if not argv or argv[0] not in BENCHMARKS:
        names = ", ".join(BENCHMARKS)
        print(f"usage: lra bench {{{names}}} [options]   (lra bench NAME --help for its options)")
        return 2
    return importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:])
