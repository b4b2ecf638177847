"""ListOps generator: the official LRA algorithm (Tay et al., 2021, after Nangia & Bowman, 2018), fast.

Trees are grown and evaluated in one pass, abandoned as soon as they grow too long, and generated in
fixed-size seeded shards over a process pool, so the output depends only on (seed, counts, spec).
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lra.data.checks import check_int

# Bumped whenever the generated data for the same (seed, counts, spec) would change.
GENERATOR_VERSION = 1
# Kept trees per shard. Fixed (not derived from the worker count) so results do not depend on it.
SHARD_SIZE = 500
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
SPLITS = ("train", "val", "test")
HEADER = "Source\tTarget"
# A shard that rejects this many trees in a row has a spec whose length window is (almost) unreachable.
MAX_REJECTIONS_IN_A_ROW = 1_000_000

# Random draws come from streams of random bytes mapped through a table that holds each outcome equally
# often; bytes beyond the last full set of outcomes are deleted, so every draw is exactly uniform.
_BLOCK_BYTES = 1 << 14
# A node above the maximum depth: a digit 0-9 with probability 3/4 (uniform), else operator 10 + k with k
# uniform over OPERATORS (the official VALUE_P = 0.25): 6 table entries per digit, 5 per operator.
_NODE_OUTCOMES = [d for d in range(10) for _ in range(6)] + [10 + k for k in range(4) for _ in range(5)]
_DIGITS = tuple(str(d) for d in range(10))
_DIGIT_THEN_CLOSE = tuple(f"{d} ) " for d in range(10))
# An operator with n arguments opens n + 1 parentheses: one per binary application, one for `]`.
_OPENERS = tuple("( " * (n + 1) for n in range(65))
# Trees are grown by recursion, one Python frame per level.
_MAX_DEPTH_LIMIT = 200


def _uniform_stream(rng: random.Random, outcomes: list[int]) -> Iterator[int]:
    """An endless stream of draws, each uniform over `outcomes` (at most 256 of them)."""
    copies = 256 // len(outcomes)
    table = bytes(outcomes * copies + [0] * (256 - copies * len(outcomes)))
    leftover = bytes(range(copies * len(outcomes), 256))
    blocks = (rng.randbytes(_BLOCK_BYTES).translate(table, leftover) for _ in itertools.repeat(None))
    return itertools.chain.from_iterable(blocks)


@dataclass(frozen=True)
class ListOpsSpec:
    """Tree settings of the official generator (defaults: LRA's); kept: min_length < length < max_length."""

    max_depth: int = 10
    max_args: int = 10
    min_length: int = 500
    max_length: int = 2000

    def __post_init__(self) -> None:
        for name, lowest in (("max_depth", 1), ("max_args", 2), ("min_length", 0)):
            check_int(f"ListOpsSpec.{name}", getattr(self, name), lowest)
        if self.max_depth > _MAX_DEPTH_LIMIT:
            raise ValueError(
                f"ListOpsSpec.max_depth must be <= {_MAX_DEPTH_LIMIT} (trees are grown recursively), "
                f"got {self.max_depth!r}"
            )
        if self.max_args >= len(_OPENERS):
            raise ValueError(f"ListOpsSpec.max_args must be <= {len(_OPENERS) - 1}, got {self.max_args!r}")
        if not isinstance(self.max_length, int) or self.max_length < self.min_length + 2:
            raise ValueError(
                f"ListOpsSpec.max_length must be an integer >= min_length + 2 = {self.min_length + 2} "
                f"(kept trees have min_length < length < max_length), got {self.max_length!r}"
            )
        if self.longest_tree() <= self.min_length:
            raise ValueError(
                f"ListOpsSpec.min_length={self.min_length} is unreachable: with max_depth={self.max_depth} "
                f"and max_args={self.max_args} the longest possible tree has {self.longest_tree()} tokens"
            )

    def longest_tree(self) -> int:
        """Length of the largest tree the spec can grow (every node above the last level a full operator)."""
        length = 1
        for _ in range(self.max_depth - 1):
            length = 2 + self.max_args * length
        return length


@dataclass
class _Draws:
    """The random streams of one shard: node kinds, digits at the maximum depth, numbers of arguments."""

    nodes: Iterator[int]
    digits: Iterator[int]
    num_args: Iterator[int]

    @classmethod
    def seeded(cls, seed: int, spec: ListOpsSpec) -> _Draws:
        rng = random.Random(seed)
        return cls(
            nodes=_uniform_stream(rng, _NODE_OUTCOMES),
            digits=_uniform_stream(rng, list(range(10))),
            num_args=_uniform_stream(rng, list(range(2, spec.max_args + 1))),
        )


def _grow_tree(spec: ListOpsSpec, draws: _Draws) -> tuple[str, int] | None:
    """Grow one tree from depth 1: (official Source string, value), or None if its length is out of range.

    Length counts digits plus 2 per operator (the operator and its `]`). Arguments not yet grown count as
    one token each, so the running length never exceeds the final one, and growth stops as soon as it
    reaches max_length: this never changes which trees are kept.
    """
    max_depth, max_length = spec.max_depth, spec.max_length
    nodes, digits, next_num_args = draws.nodes, draws.digits, draws.num_args.__next__
    pieces: list[str] = []
    emit = pieces.append
    length = 0

    def operator(op: int, depth: int) -> int:
        """Emit operator `op` with its arguments at depth + 1 and return its value; -1 = too long."""
        nonlocal length
        num_args = next_num_args()
        length += 2 + num_args
        if length >= max_length:
            return -1
        emit(_OPENERS[num_args] + OPERATORS[op] + " ")
        if depth + 1 >= max_depth:
            values = list(itertools.islice(digits, num_args))
            emit("".join([_DIGIT_THEN_CLOSE[digit] for digit in values]))
        else:
            values = []
            for node in itertools.islice(nodes, num_args):
                if node > 9:
                    length -= 1  # this argument is an operator, not the one digit counted above
                    node = operator(node - 10, depth + 1)
                    if node < 0:
                        return -1
                    values.append(node)
                    emit(" ) ")
                else:
                    values.append(node)
                    emit(_DIGIT_THEN_CLOSE[node])
        emit("] )")
        if op == 0:
            return min(values)
        if op == 1:
            return max(values)
        if op == 2:  # int(numpy.median): the mean of the two middle values, truncated, for even counts
            values.sort()
            middle = num_args >> 1
            return values[middle] if num_args & 1 else (values[middle - 1] + values[middle]) >> 1
        return sum(values) % 10

    root = next(digits) if max_depth == 1 else next(nodes)
    if root > 9:
        value = operator(root - 10, 1)
        if value < 0 or length <= spec.min_length:
            return None
        return "".join(pieces), value
    return (_DIGITS[root], root) if spec.min_length < 1 else None


def _shard_seed(seed: int, shard: int) -> int:
    """A 64-bit seed for one shard, derived from the run seed and the shard index only."""
    digest = hashlib.sha256(f"lra-listops:{seed}:{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _generate_shard(task: tuple[int, int, ListOpsSpec]) -> list[tuple[str, int]]:
    """SHARD_SIZE kept trees (duplicates included) of shard `task[1]`, as (Source, value)."""
    seed, shard, spec = task
    draws = _Draws.seeded(_shard_seed(seed, shard), spec)
    kept: list[tuple[str, int]] = []
    rejected = 0
    while len(kept) < SHARD_SIZE:
        tree = _grow_tree(spec, draws)
        if tree is not None:
            kept.append(tree)
            rejected = 0
            continue
        rejected += 1
        if rejected >= MAX_REJECTIONS_IN_A_ROW:
            raise ValueError(
                f"{spec} keeps (almost) no trees: {rejected} trees in a row had a length outside "
                f"({spec.min_length}, {spec.max_length}); widen the window or change max_depth / max_args"
            )
    return kept


def _unique_trees(total: int, seed: int, spec: ListOpsSpec, workers: int) -> list[tuple[str, int]]:
    """The first `total` distinct trees of shards 0, 1, 2, ... (in shard order, whatever the worker count)."""
    unique: list[tuple[str, int]] = []
    seen: set[str] = set()
    next_shard = 0
    processes = min(workers, -(-total // SHARD_SIZE))
    pool = multiprocessing.Pool(processes) if processes > 1 else None
    try:
        while len(unique) < total:
            count = -(-(total - len(unique)) // SHARD_SIZE)
            tasks = [(seed, shard, spec) for shard in range(next_shard, next_shard + count)]
            next_shard += count
            shards: Iterable[list[tuple[str, int]]] = (
                pool.imap(_generate_shard, tasks) if pool else map(_generate_shard, tasks)
            )
            before = len(unique)
            for trees in shards:
                for source, value in trees:
                    if source not in seen and len(unique) < total:
                        seen.add(source)
                        unique.append((source, value))
            if len(unique) == before:
                raise ValueError(
                    f"{spec} cannot make {total} distinct trees: {count * SHARD_SIZE} more trees held none "
                    f"beyond the {before} already found; ask for fewer examples or allow larger trees"
                )
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return unique


def _write_tsv(path: Path, rows: Iterable[tuple[str, int]]) -> None:
    """Write `Source\\tTarget` rows atomically: a temporary sibling, then os.replace."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="ascii", newline="\n") as file:
            file.write(HEADER + "\n")
            file.writelines(f"{source}\t{value}\n" for source, value in rows)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def generate_listops(
    out_dir: Path,
    num_train: int = 96000,
    num_val: int = 2000,
    num_test: int = 2000,
    seed: int = 0,
    spec: ListOpsSpec = ListOpsSpec(),
    workers: int | None = None,
) -> dict[str, Path]:
    """Write `out_dir/basic_{train,val,test}.tsv` in the official format; return {split: path}.

    No tree appears twice, within or across splits. Test and validation are taken first from the
    de-duplicated stream, so changing num_train leaves them unchanged.
    """
    for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        check_int(name, value, 0)
    if workers is None:
        workers = os.cpu_count() or 1
    check_int("workers", workers, 1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trees = _unique_trees(num_train + num_val + num_test, seed, spec, workers)
    ranges = {
        "test": (0, num_test),
        "val": (num_test, num_test + num_val),
        "train": (num_test + num_val, num_test + num_val + num_train),
    }
    paths = {}
    for split in SPLITS:
        start, stop = ranges[split]
        paths[split] = out_dir / f"basic_{split}.tsv"
        _write_tsv(paths[split], trees[start:stop])
    return paths
