"""The ListOps generator against an independent reading of the official algorithm and file format."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lra.bench.listops import main as bench_main
from lra.bench.listops import plain_listops
from lra.data.generate.listops import SHARD_SIZE, ListOpsSpec, generate_listops
from lra.data.listops import read_listops_tsv

TINY = ListOpsSpec(max_depth=4, max_args=4, min_length=10, max_length=60)
FUNCTIONS = {
    "[MIN": min,
    "[MAX": max,
    "[MED": lambda args: int(np.median(args)),
    "[SM": lambda args: sum(args) % 10,
}


def parse_official(source: str) -> object:
    """The binary tree an official Source string writes: `( LEFT RIGHT )` pairs around tokens."""
    tokens = source.split(" ")
    position = 0

    def item() -> object:
        nonlocal position
        token = tokens[position]
        position += 1
        if token != "(":
            assert token != ")", f"unexpected ')' at token {position} of {source!r}"
            return token
        left, right = item(), item()
        assert tokens[position] == ")", f"expected ')' at token {position + 1} of {source!r}"
        position += 1
        return (left, right)

    tree = item()
    assert position == len(tokens), f"trailing tokens in {source!r}"
    return tree


def evaluate_official(tree: object) -> int:
    """Value of a parsed tree: (op, a) opens an application, (f, b) extends it, (f, ']') ends it."""

    def walk(node: object) -> object:
        if isinstance(node, str):
            return node if node in FUNCTIONS or node == "]" else int(node)
        left, right = walk(node[0]), walk(node[1])
        if isinstance(left, str):
            assert left in FUNCTIONS and isinstance(right, int), f"bad application {node!r}"
            return (left, [right])
        assert isinstance(left, tuple), f"{left!r} applied to {right!r}"
        if right == "]":
            return FUNCTIONS[left[0]](left[1])
        assert isinstance(right, int), f"bad argument {right!r}"
        return (left[0], [*left[1], right])

    value = walk(tree)
    assert isinstance(value, int), f"unfinished expression {tree!r}"
    return value


def token_length(source: str) -> int:
    return sum(token not in ("(", ")") for token in source.split())


def rows(path: Path) -> list[tuple[str, int]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "Source\tTarget"
    return [(source, int(target)) for source, target in (line.split("\t") for line in lines[1:])]


def test_independent_evaluator_on_an_official_release_line() -> None:
    # A line in the form of the official release: MAX(3, 4, 3, 3) = 4.
    assert evaluate_official(parse_official("( ( ( ( ( [MAX 3 ) 4 ) 3 ) 3 ) ] )")) == 4
    assert evaluate_official(parse_official("( ( ( [MED 1 ) 2 ) ] )")) == 1  # int(1.5)
    assert evaluate_official(parse_official("( ( ( ( [SM 9 ) 8 ) 7 ) ] )")) == 4


@pytest.mark.parametrize(
    ("spec", "counts"),
    [(TINY, (300, 40, 40)), (ListOpsSpec(), (30, 5, 5))],
    ids=["tiny", "lra-default"],
)
def test_every_label_and_length_matches_an_independent_evaluation(
    tmp_path: Path, spec: ListOpsSpec, counts: tuple[int, int, int]
) -> None:
    paths = generate_listops(tmp_path, *counts, seed=3, spec=spec, workers=1)
    for split, count in zip(("train", "val", "test"), counts, strict=True):
        split_rows = rows(paths[split])
        assert len(split_rows) == count
        for source, label in split_rows:
            assert evaluate_official(parse_official(source)) == label, source
            assert spec.min_length < token_length(source) < spec.max_length, source


def test_string_form_is_the_official_one(tmp_path: Path) -> None:
    # Depth 2: a bare digit, or one operator over digits, e.g. MAX(2, 9) -> `( ( ( [MAX 2 ) 9 ) ] )`.
    spec = ListOpsSpec(max_depth=2, max_args=3, min_length=0, max_length=10)
    paths = generate_listops(tmp_path, 200, 0, 0, seed=0, spec=spec, workers=1)
    two = re.compile(r"\( \( \( \[(MIN|MAX|MED|SM) \d \) \d \) \] \)")
    three = re.compile(r"\( \( \( \( \[(MIN|MAX|MED|SM) \d \) \d \) \d \) \] \)")
    seen = {"digit": 0, "two": 0, "three": 0}
    for source, label in rows(paths["train"]):
        if re.fullmatch(r"\d", source):
            assert int(source) == label
            seen["digit"] += 1
        elif two.fullmatch(source):
            seen["two"] += 1
        else:
            assert three.fullmatch(source), source
            seen["three"] += 1
    assert min(seen.values()) > 0, seen


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = generate_listops(tmp_path / "a", 200, 20, 20, seed=7, spec=TINY, workers=1)
    second = generate_listops(tmp_path / "b", 200, 20, 20, seed=7, spec=TINY, workers=1)
    for split in first:
        assert first[split].read_bytes() == second[split].read_bytes()


def test_worker_count_does_not_change_the_data(tmp_path: Path) -> None:
    counts = (2 * SHARD_SIZE + 100, 50, 50)  # several shards
    one = generate_listops(tmp_path / "one", *counts, seed=1, spec=TINY, workers=1)
    two = generate_listops(tmp_path / "two", *counts, seed=1, spec=TINY, workers=2)
    for split in one:
        assert one[split].read_bytes() == two[split].read_bytes()


def test_different_seeds_give_different_data(tmp_path: Path) -> None:
    first = generate_listops(tmp_path / "a", 100, 10, 10, seed=0, spec=TINY, workers=1)
    second = generate_listops(tmp_path / "b", 100, 10, 10, seed=1, spec=TINY, workers=1)
    assert first["train"].read_bytes() != second["train"].read_bytes()
    assert set(rows(first["train"])) != set(rows(second["train"]))


def test_no_example_appears_twice_within_or_across_splits(tmp_path: Path) -> None:
    # A small space of trees, so the raw stream has many duplicates.
    spec = ListOpsSpec(max_depth=3, max_args=2, min_length=3, max_length=8)
    paths = generate_listops(tmp_path, 300, 30, 30, seed=0, spec=spec, workers=1)
    sources = [source for split in paths for source, _ in rows(paths[split])]
    assert len(sources) == 360
    assert len(set(sources)) == len(sources)


def test_validation_and_test_do_not_depend_on_num_train(tmp_path: Path) -> None:
    small = generate_listops(tmp_path / "small", 50, 20, 20, seed=0, spec=TINY, workers=1)
    large = generate_listops(tmp_path / "large", 400, 20, 20, seed=0, spec=TINY, workers=1)
    for split in ("val", "test"):
        assert small[split].read_bytes() == large[split].read_bytes()


def test_files_round_trip_through_the_reader(tmp_path: Path) -> None:
    paths = generate_listops(tmp_path, 100, 10, 10, seed=2, spec=TINY, workers=1)
    for split, path in paths.items():
        assert path == tmp_path / f"basic_{split}.tsv"
        read = [(row.source, row.label) for row in read_listops_tsv(path)]
        assert read == rows(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "basic_test.tsv",
        "basic_train.tsv",
        "basic_val.tsv",
    ]


def test_too_few_distinct_trees_is_an_error(tmp_path: Path) -> None:
    digits_only = ListOpsSpec(max_depth=1, min_length=0, max_length=2)  # just the 10 one-digit trees
    with pytest.raises(ValueError, match="cannot make 20 distinct trees"):
        generate_listops(tmp_path, 20, 0, 0, spec=digits_only, workers=1)


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"max_depth": 0}, "max_depth", "0"),
        ({"max_args": 1}, "max_args", "1"),
        ({"max_args": 100}, "max_args", "100"),
        ({"min_length": -1}, "min_length", "-1"),
        ({"min_length": 10, "max_length": 11}, "max_length", "11"),
        ({"max_depth": 2, "max_args": 2, "min_length": 4, "max_length": 10}, "min_length", "4"),
    ],
)
def test_spec_validation_names_field_and_value(kwargs: dict[str, int], field: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"{field}.*{value}|{value}.*{field}"):
        ListOpsSpec(**kwargs)


def test_bad_counts_and_workers_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"num_val.*-1"):
        generate_listops(tmp_path, 10, -1, 0, spec=TINY)
    with pytest.raises(ValueError, match=r"workers.*0"):
        generate_listops(tmp_path, 10, 0, 0, spec=TINY, workers=0)


def test_bench_plain_reference_follows_the_official_algorithm() -> None:
    rows = plain_listops(50, seed=0, spec=TINY)
    assert len({source for source, _ in rows}) == 50
    for source, value in rows:
        assert evaluate_official(parse_official(source)) == value
        assert TINY.min_length < token_length(source) < TINY.max_length


def test_bench_command_prints_both_rates_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--n", "3", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "plain, 1 thread" in out and "generate_listops, 1 workers" in out
    assert "examples/s" in out and "projected 100,000" in out and "speed-up" in out


@pytest.mark.slow
def test_full_size_lra_generation(tmp_path: Path) -> None:
    paths = generate_listops(tmp_path)
    sources: set[str] = set()
    for split, count in (("train", 96000), ("val", 2000), ("test", 2000)):
        split_rows = rows(paths[split])
        assert len(split_rows) == count
        sources.update(source for source, _ in split_rows)
        for source, label in split_rows[::50]:
            assert evaluate_official(parse_official(source)) == label
            assert 500 < token_length(source) < 2000
    assert len(sources) == 100000
