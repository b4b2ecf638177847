"""Retrieval (AAN): the official TSV reader, release layouts, the two-tower cache and loaders."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from helpers.retrieval import write_aan

import lra.data.retrieval as retrieval_module
from lra.data.cache import is_cached, read_settings
from lra.data.layout import RELEASE_URL
from lra.data.retrieval import AANRow, RetrievalDataModule, find_aan_files, read_aan_tsv

# A known row: "Hi!" -> [73, 106, 34]; "été" is the UTF-8 bytes C3 A9 74 C3 A9.
ROW = "1\tP01-1001\tW02-2002\tHi!\tété\n".encode()
ROW_TOKENS = ([73, 106, 34], [196, 170, 117, 196, 170])


def make(root: Path | None, cache: Path, **overrides: object) -> RetrievalDataModule:
    settings: dict[str, object] = {
        "root": None if root is None else str(root),
        "batch_size": 3,
        "num_workers": 0,
        "cache_dir": str(cache),
    }
    settings.update(overrides)
    return RetrievalDataModule(**settings)  # type: ignore[arg-type]


def ready(data: RetrievalDataModule) -> RetrievalDataModule:
    data.prepare_data()
    data.setup("fit")
    return data


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tsv_folder(root: Path) -> Path:
    return root / "lra_release" / "lra_release" / "tsv_data"


# The reader.


def test_reader_yields_raw_rows_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "new_aan_pairs.eval.tsv", ROW + b"0.0\ta\tb\tx\r y\ttwo\r\n1.0\tc\td\te\tf")
    rows = list(read_aan_tsv(path))
    assert rows == [
        AANRow(1, 1, b"P01-1001", b"W02-2002", b"Hi!", "été".encode()),
        # A trailing \r is a line ending; one inside a document is text.
        AANRow(2, 0, b"a", b"b", b"x\r y", b"two"),
        AANRow(3, 1, b"c", b"d", b"e", b"f"),
    ]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (ROW + b"1\ta\tb\tonly one document\n", 2, r"expected 5 tab-separated columns \(label, id1, id2, text1, "
         r"text2\), got 4: '1\\ta\\tb\\tonly one document'"),
        (ROW + b"0\ta\tb\tc\td\te\n", 2, r"expected 5 tab-separated columns .*got 6"),
        (ROW + b"\n" + ROW, 2, r"expected 5 tab-separated columns .*got 1: ''"),
        (b"2\ta\tb\tc\td\n", 1, r"expected the label 0 or 1 \(or 0\.0, 1\.0\), got '2'"),
        (ROW + b"1.5\ta\tb\tc\td\n", 2, r"expected the label .*got '1\.5'"),
        (b"true\ta\tb\tc\td\n", 1, r"expected the label .*got 'true'"),
        (b" 1\ta\tb\tc\td\n", 1, r"expected the label .*got ' 1'"),
        (b"\ta\tb\tc\td\n", 1, r"expected the label .*got ''"),
    ],
    ids=["4-columns", "6-columns", "blank-line", "label-2", "label-1.5", "label-word", "label-space", "no-label"],
)  # fmt: skip
def test_reader_errors_name_file_line_and_expectation(tmp_path: Path, body: bytes, line: int, message: str) -> None:
    path = write(tmp_path / "new_aan_pairs.train.tsv", body)
    with pytest.raises(ValueError, match=rf"new_aan_pairs\.train\.tsv, line {line}: {message}"):
        list(read_aan_tsv(path))


@pytest.mark.parametrize(
    "layout",
    [".", "tsv_data", "lra_release/tsv_data", "lra_release/lra_release/tsv_data"],
    ids=["flat", "tsv_data", "release-flattened", "release-nested"],
)
def test_files_are_found_in_every_layout(tmp_path: Path, layout: str) -> None:
    write_aan(tmp_path, layout=layout)
    files = find_aan_files(tmp_path)
    assert {split: path.name for split, path in files.items()} == {
        "train": "new_aan_pairs.train.tsv",
        "val": "new_aan_pairs.eval.tsv",
        "test": "new_aan_pairs.test.tsv",
    }
    assert all(path.parent.samefile(tmp_path / layout) for path in files.values())


def test_missing_data_names_every_path_and_the_release(tmp_path: Path) -> None:
    write(tmp_path / "tsv_data" / "new_aan_pairs.train.tsv", ROW)
    with pytest.raises(FileNotFoundError) as error:
        make(tmp_path, tmp_path / "cache").prepare_data()
    message = str(error.value)
    assert "Retrieval (AAN) data not found: no complete set of files" in message
    for layout in ("", "tsv_data/", "lra_release/tsv_data/", "lra_release/lra_release/tsv_data/"):
        assert f"{tmp_path}/{layout}new_aan_pairs.eval.tsv" in message
    assert RELEASE_URL in message
    assert not (tmp_path / "cache").exists()


def test_no_root_is_an_error_saying_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"Retrieval \(AAN\) data not found: data\.root is not set.*lra_release\.gz.*--data\.root ROOT",
    ):
        make(None, tmp_path).prepare_data()


# The DataModule.


def test_sizes_for_the_model(tmp_path: Path) -> None:
    data = make(tmp_path, tmp_path)
    assert (data.vocab_size, data.num_classes, data.max_length, data.two_tower, data.fixed_length) == (
        257,
        2,
        4000,
        True,
        False,
    )
    assert data.reference_sizes() == {"train": 147_086, "val": 18_090, "test": 17_437}
    assert "validation: the eval split" in data.describe()


def test_splits_are_train_eval_test_with_exact_tokens(tmp_path: Path) -> None:
    root = write_aan(tmp_path / "data")
    folder = tsv_folder(root)
    with open(folder / "new_aan_pairs.test.tsv", "ab") as file:
        file.write(ROW)
    data = ready(make(root, tmp_path / "cache"))
    assert data.cache_path.name.startswith("retrieval-aan-")
    assert read_settings(data.cache_path)["sizes"] == {"train": 8, "val": 4, "test": 5}
    assert read_settings(data.cache_path)["towers"] == 2
    (tokens_a, tokens_b), label = data.dataset("test")[4]
    assert (tokens_a.tolist(), tokens_b.tolist(), label) == (*ROW_TOKENS, 1)
    for split, name in (("train", "train"), ("val", "eval"), ("test", "test")):
        rows = list(read_aan_tsv(folder / f"new_aan_pairs.{name}.tsv"))
        dataset = data.dataset(split)
        assert [dataset[index][1] for index in range(len(dataset))] == [row.label for row in rows]
        assert {row.label for row in rows} == {0, 1}
        for index, row in enumerate(rows):
            (tokens_a, tokens_b), _ = dataset[index]
            assert tokens_a.tolist() == [byte + 1 for byte in row.text1]
            assert tokens_b.tolist() == [byte + 1 for byte in row.text2]


def test_each_document_is_truncated_to_max_length(tmp_path: Path) -> None:
    root = write_aan(tmp_path / "data")
    data = ready(make(root, tmp_path / "cache", max_length=7))
    rows = list(read_aan_tsv(tsv_folder(root) / "new_aan_pairs.train.tsv"))
    for index, row in enumerate(rows):
        (tokens_a, tokens_b), _ = data.dataset("train")[index]
        assert tokens_a.tolist() == [byte + 1 for byte in row.text1[:7]]
        assert tokens_b.tolist() == [byte + 1 for byte in row.text2[:7]]


def test_empty_document_names_file_line_and_column(tmp_path: Path) -> None:
    root = write_aan(tmp_path / "data")
    path = tsv_folder(root) / "new_aan_pairs.eval.tsv"
    with open(path, "ab") as file:
        file.write(b"0\ta\tb\tsome text\t\n")
    with pytest.raises(ValueError, match=rf"{path}, line 5, text2: empty document"):
        make(root, tmp_path / "cache").prepare_data()
    assert list((tmp_path / "cache").iterdir()) == []


def test_malformed_row_fails_the_build(tmp_path: Path) -> None:
    root = write_aan(tmp_path / "data")
    path = tsv_folder(root) / "new_aan_pairs.test.tsv"
    with open(path, "ab") as file:
        file.write(b"yes\ta\tb\tc\td\n")
    with pytest.raises(ValueError, match=rf"{path}, line 5: expected the label 0 or 1 \(or 0\.0, 1\.0\), got 'yes'"):
        make(root, tmp_path / "cache").prepare_data()


@pytest.mark.parametrize(
    "layout", ["tsv_data", "lra_release/tsv_data", "lra_release/lra_release/tsv_data"], ids=lambda x: x
)
def test_datamodule_reads_every_release_layout(tmp_path: Path, layout: str) -> None:
    data = ready(make(write_aan(tmp_path / "data", sizes=(4, 2, 3), layout=layout), tmp_path / "cache"))
    assert [len(data.dataset(split)) for split in ("train", "val", "test")] == [4, 2, 3]


def test_second_prepare_hits_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_aan(tmp_path / "data")
    first = ready(make(root, tmp_path / "cache"))
    assert is_cached(first.cache_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been hit")

    monkeypatch.setattr(retrieval_module, "read_aan_tsv", refuse)
    monkeypatch.setattr(retrieval_module, "tokenize_bytes", refuse)
    # The tsv_data folder itself as root is the same files, so the same cache.
    second = ready(make(tsv_folder(root), tmp_path / "cache"))
    assert second.cache_path == first.cache_path
    assert len(second.dataset("train")) == 8


def test_changed_settings_or_files_use_another_cache_folder(tmp_path: Path) -> None:
    root = write_aan(tmp_path / "data")
    first = make(root, tmp_path / "cache").cache_path
    assert make(root, tmp_path / "cache", max_length=100).cache_path != first
    assert make(root, tmp_path / "cache", batch_size=5, num_workers=1).cache_path == first
    with open(tsv_folder(root) / "new_aan_pairs.train.tsv", "ab") as file:
        file.write(ROW)
    assert make(root, tmp_path / "cache").cache_path != first


def test_loaders_yield_two_tower_batches(tmp_path: Path) -> None:
    data = ready(make(write_aan(tmp_path / "data"), tmp_path / "cache"))
    batches = list(data.val_dataloader())
    assert [len(batch["label"]) for batch in batches] == [3, 1]
    batch = batches[0]
    assert set(batch) == {"tokens_a", "mask_a", "tokens_b", "mask_b", "label"}
    for side, tower in (("a", 0), ("b", 1)):
        lengths = [len(data.dataset("val")[index][0][tower]) for index in range(3)]
        tokens, mask = batch[f"tokens_{side}"], batch[f"mask_{side}"]
        assert tokens.shape == mask.shape == (3, max(lengths))
        assert (tokens.dtype, mask.dtype) == (torch.long, torch.bool)
        assert mask.sum(1).tolist() == lengths
        assert tokens[~mask].eq(0).all() and tokens[mask].ge(1).all()
    assert batch["label"].tolist() == [1, 0, 1]
    # The training stream is endless: its first pass (3 + 3 + the first 2 of the third batch) is each example once.
    first_pass = [batch["label"] for batch in itertools.islice(data.train_dataloader(), 3)]
    drawn = torch.cat(first_pass)[:8].tolist()
    train = data.dataset("train")
    assert sorted(drawn) == sorted(train[index][1] for index in range(len(train)))
    first_a = torch.cat([batch["tokens_a"][:, :1] for batch in itertools.islice(data.train_dataloader(), 3)])[:8]
    assert sorted(first_a.flatten().tolist()) == sorted(int(train[index][0][0][0]) for index in range(len(train)))
