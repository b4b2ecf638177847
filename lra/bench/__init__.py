"""`lra bench NAME ...`: benchmark commands that measure side by side in one run and print ratios."""

from __future__ import annotations

from lra.dispatch import Command, dispatch

BENCHMARKS = {
    "attention": Command(
        "lra.bench.attention:main", "time, peak memory and FLOP/s of each attention's forward + backward vs length"
    ),
    "jobs": Command("lra.bench.jobs:main", "cells per hour of `lra suite` with --jobs 1 against --jobs N"),
    "listops": Command("lra.bench.listops:main", "generate_listops against a plain port of the official generator"),
    "pathfinder": Command("lra.bench.pathfinder:main", "generate_pathfinder's speed against the original generator"),
    "train": Command("lra.bench.train:main", "training throughput: the real data pipeline vs batches in memory"),
}


def main(argv: list[str]) -> int:
    """Run the benchmark argv[0] names on the rest of argv (`lra bench --help` lists them)."""
    return dispatch("lra bench", BENCHMARKS, argv)
