"""`lra bench listops`: generate_listops against a plain single-threaded port of the official generator.

Both make the same number of distinct examples with the default LRA spec, in one run; the ratio of their
rates is the speed-up. The plain port grows a whole tree (no early stop), then writes and evaluates it.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from lra.data.generate.listops import OPERATORS, ListOpsSpec, generate_listops

PROJECTED = 100_000


def _plain_tree(rng: random.Random, depth: int, spec: ListOpsSpec) -> tuple[object, int]:
    """The official recursion: (nested binary tuples, length)."""
    if depth < spec.max_depth and rng.random() <= 0.25:
        num_args = rng.randint(2, spec.max_args)
        length = 2
        args = []
        for _ in range(num_args):
            arg, arg_length = _plain_tree(rng, depth + 1, spec)
            args.append(arg)
            length += arg_length
        tree: object = (rng.choice(OPERATORS), args[0])
        for arg in args[1:]:
            tree = (tree, arg)
        return (tree, "]"), length
    return rng.choice(range(10)), 1


def _plain_string(tree: object) -> str:
    if isinstance(tree, tuple):
        return f"( {_plain_string(tree[0])} {_plain_string(tree[1])} )"
    return str(tree)


def _plain_value(tree: object) -> object:
    """The official evaluation: operators become partial applications that `]` completes."""
    if not isinstance(tree, tuple):
        return tree
    left, right = _plain_value(tree[0]), _plain_value(tree[1])
    if left in OPERATORS:
        return (left, [right])
    if right == "]":
        op, args = left
        if op == "[MIN":
            return min(args)
        if op == "[MAX":
            return max(args)
        if op == "[MED":
            return int(np.median(args))
        return int(np.sum(args)) % 10
    return (left[0], [*left[1], right])


def plain_listops(n: int, seed: int, spec: ListOpsSpec) -> list[tuple[str, object]]:
    """n distinct (Source, value) pairs, made the straightforward way on one core."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows = []
    while len(rows) < n:
        tree, length = _plain_tree(rng, 1, spec)
        if spec.min_length < length < spec.max_length:
            source = _plain_string(tree)
            if source not in seen:
                seen.add(source)
                rows.append((source, _plain_value(tree)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lra bench listops", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="examples each implementation makes")
    parser.add_argument("--workers", type=int, default=None, help="processes for generate_listops (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    spec = ListOpsSpec()
    workers = args.workers or os.cpu_count() or 1

    start = time.perf_counter()
    plain_listops(args.n, args.seed, spec)
    plain_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate_listops(Path(folder), args.n, 0, 0, args.seed, spec, workers)
        fast_s = time.perf_counter() - start

    print(f"ListOps generation, {args.n} examples, {spec}, {os.cpu_count()} cores")
    for name, seconds in (("plain, 1 thread", plain_s), (f"generate_listops, {workers} workers", fast_s)):
        rate = args.n / seconds
        print(
            f"  {name:<32} {seconds:8.2f} s  {rate:8.0f} examples/s  projected {PROJECTED:,}: {PROJECTED / rate:7.1f} s"
        )
    print(f"  speed-up: {plain_s / fast_s:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
