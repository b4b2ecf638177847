"""Text (IMDB): the byte tokeniser, the aclImdb reader, both validation modes, the cache and the loaders."""

from __future__ import annotations

import itertools
from pathlib import Path

import jsonargparse
import numpy as np
import pytest
import torch
from helpers.text import write_imdb

import lra.data.text as text_module
from lra.data.bytes import VOCAB_SIZE, tokenize_bytes
from lra.data.cache import is_cached, read_settings
from lra.data.text import TextDataModule, find_imdb_folder, review_files, split_train


def make(root: Path | None, cache: Path, **overrides: object) -> TextDataModule:
    settings: dict[str, object] = {
        "root": None if root is None else str(root),
        "batch_size": 4,
        "num_workers": 0,
        "cache_dir": str(cache),
        "protocol": "clean",  # a train slice validates; the faithful protocol's test validation is tested on its own
    }
    settings.update(overrides)
    return TextDataModule(**settings)  # type: ignore[arg-type]


def ready(data: TextDataModule) -> TextDataModule:
    data.prepare_data()
    data.setup("fit")
    return data


def tokens_of(data: TextDataModule, split: str) -> list[list[int]]:
    dataset = data.dataset(split)
    return [dataset[index][0].tolist() for index in range(len(dataset))]


def labels_of(data: TextDataModule, split: str) -> list[int]:
    dataset = data.dataset(split)
    return [dataset[index][1] for index in range(len(dataset))]


def file_tokens(path: Path, max_length: int = 4000) -> list[int]:
    return [byte + 1 for byte in path.read_bytes()[:max_length]]


# The byte tokeniser (lra.data.bytes, shared with Retrieval).


def test_bytes_become_byte_plus_one() -> None:
    ids = tokenize_bytes(b"Hi!")
    assert ids.dtype == np.uint16
    assert ids.tolist() == [73, 106, 34]
    # Non-ASCII text is tokenised as its UTF-8 bytes, never decoded: "é" is 0xC3 0xA9.
    assert tokenize_bytes("é!".encode()).tolist() == [0xC3 + 1, 0xA9 + 1, 34]
    assert tokenize_bytes(bytes([0, 255])).tolist() == [1, 256]
    assert VOCAB_SIZE == 257


def test_bytes_are_truncated_to_max_length() -> None:
    assert tokenize_bytes(b"Hello", max_length=2).tolist() == [73, 102]
    assert tokenize_bytes(b"Hello", max_length=100).tolist() == [73, 102, 109, 109, 112]


def test_empty_document_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"review\.txt: empty document"):
        tokenize_bytes(b"", where="review.txt")


# The aclImdb reader.


def test_reviews_are_ordered_by_numeric_id_and_other_files_ignored(tmp_path: Path) -> None:
    for name in ("10_1.txt", "2_3.txt", "1_9.txt", "notes.txt", "²_5.txt", "11_2.txt.bak", "labeledBow.feat"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "3_4.txt").mkdir()  # a folder, not a review
    assert [path.name for path in review_files(tmp_path)] == ["1_9.txt", "2_3.txt", "10_1.txt", "notes.txt", "²_5.txt"]


def test_folder_without_reviews_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "urls_pos.txt.gz").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path} holds no reviews: expected <id>_<rating>\.txt"):
        review_files(tmp_path)


@pytest.mark.parametrize("inside", [".", "aclImdb"], ids=["parent", "aclImdb"])
def test_root_may_be_aclimdb_or_its_parent(tmp_path: Path, inside: str) -> None:
    write_imdb(tmp_path)
    assert find_imdb_folder(tmp_path / inside) == tmp_path / "aclImdb"


def test_missing_folders_name_the_paths_and_the_download(tmp_path: Path) -> None:
    write_imdb(tmp_path)
    for review in (tmp_path / "aclImdb" / "test" / "neg").iterdir():
        review.unlink()
    (tmp_path / "aclImdb" / "test" / "neg").rmdir()
    with pytest.raises(FileNotFoundError) as error:
        find_imdb_folder(tmp_path)
    message = str(error.value)
    assert f"{tmp_path}/aclImdb/test/neg" in message and f"{tmp_path}/test/neg" in message
    assert "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz" in message


def test_train_slice_is_stratified_seeded_and_disjoint() -> None:
    labels = [0] * 30 + [1] * 20
    train, val = split_train(labels, 0.2, seed=0)
    assert sorted(train + val) == list(range(50)) and train == sorted(train) and val == sorted(val)
    assert [labels[index] for index in val].count(0) == 6 and [labels[index] for index in val].count(1) == 4
    assert split_train(labels, 0.2, seed=0) == (train, val)
    assert split_train(labels, 0.2, seed=1)[1] != val


def test_train_slice_holds_out_at_least_one_and_keeps_one_per_class() -> None:
    assert len(split_train([0, 0, 1, 1], 0.01, seed=0)[1]) == 2
    assert len(split_train([0, 0, 1, 1], 0.99, seed=0)[0]) == 2
    with pytest.raises(ValueError, match=r"at least 2 training reviews per class.*train/pos has 1"):
        split_train([0, 0, 1], 0.5, seed=0)


# The DataModule.


def test_sizes_for_the_model(tmp_path: Path) -> None:
    data = make(write_imdb(tmp_path / "data"), tmp_path / "cache")
    assert (data.vocab_size, data.num_classes, data.max_length, data.two_tower, data.fixed_length) == (
        257,
        2,
        4000,
        False,
        False,
    )


def test_reference_sizes_follow_the_validation_mode(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data")
    assert make(root, tmp_path).reference_sizes() == {"train": 22_500, "val": 2_500, "test": 25_000}
    assert make(root, tmp_path, val_fraction=0.2).reference_sizes() == {"train": 20_000, "val": 5_000, "test": 25_000}
    assert make(root, tmp_path, validation="test").reference_sizes() == {"train": 25_000, "val": 25_000, "test": 25_000}


def test_train_slice_splits_train_and_tests_on_test(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data", per_split_class=10)
    data = ready(make(root, tmp_path / "cache", val_fraction=0.2))
    assert read_settings(data.cache_path)["sizes"] == {"train": 16, "val": 4, "test": 20}
    assert labels_of(data, "val") == [0, 0, 1, 1]
    assert labels_of(data, "train") == [0] * 8 + [1] * 8
    # Train and validation together are exactly the train reviews, each once.
    train_files = [
        file_tokens(path) for name in ("neg", "pos") for path in review_files(root / "aclImdb" / "train" / name)
    ]
    assert sorted(tokens_of(data, "train") + tokens_of(data, "val")) == sorted(train_files)
    test_files = [
        file_tokens(path) for name in ("neg", "pos") for path in review_files(root / "aclImdb" / "test" / name)
    ]
    assert tokens_of(data, "test") == test_files
    assert labels_of(data, "test") == [0] * 10 + [1] * 10
    assert "validation: seeded 20% slice of train, per class (seed 0), 4 reviews" in data.describe()


def test_train_slice_is_deterministic_and_differs_across_seeds(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data", per_split_class=10)
    first = tokens_of(ready(make(root, tmp_path / "a", val_fraction=0.3)), "val")
    again = tokens_of(ready(make(root, tmp_path / "b", val_fraction=0.3)), "val")
    other = tokens_of(ready(make(root, tmp_path / "c", val_fraction=0.3, seed=1)), "val")
    assert first == again
    assert first != other


def test_test_validation_is_the_official_practice(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data")
    data = ready(make(root, tmp_path / "cache", validation="test"))
    assert read_settings(data.cache_path)["sizes"] == {"train": 8, "val": 8, "test": 8}
    assert tokens_of(data, "val") == tokens_of(data, "test")
    assert labels_of(data, "val") == labels_of(data, "train") == [0] * 4 + [1] * 4
    assert "validation: the IMDB test split (official LRA practice; validation and test are the same data)" in (
        data.describe()
    )


def test_hand_written_reviews_have_exact_tokens_and_labels(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data", per_split_class=2)
    test = root / "aclImdb" / "test"
    (test / "neg" / "0_1.txt").write_bytes(b"Hi!")
    (test / "pos" / "10_9.txt").write_bytes("Très bien\n".encode())
    data = ready(make(root, tmp_path / "cache", max_length=6))
    # Order: neg before pos; within a folder by numeric id (0, 1, then 10).
    assert labels_of(data, "test") == [0, 0, 0, 1, 1, 1]
    tokens = tokens_of(data, "test")
    assert tokens[0] == [73, 106, 34]
    #                T   r    \xc3 \xa8 s    ' '  (truncated to 6 bytes)
    assert tokens[5] == [85, 115, 196, 169, 116, 33]
    assert all(len(sequence) <= 6 for sequence in tokens_of(data, "train"))


def test_empty_review_names_the_file_and_leaves_no_cache(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data")
    empty = root / "aclImdb" / "train" / "pos" / "2_10.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{empty}: empty document"):
        make(root, tmp_path / "cache").prepare_data()
    assert list((tmp_path / "cache").iterdir()) == []


def test_pos_folder_without_reviews_names_the_folder(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data")
    for review in (root / "aclImdb" / "test" / "pos").iterdir():
        review.rename(review.with_suffix(".txt.orig"))
    with pytest.raises(FileNotFoundError, match=rf"{root / 'aclImdb' / 'test' / 'pos'} holds no reviews"):
        make(root, tmp_path / "cache").prepare_data()


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    data = make(tmp_path / "missing", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match=r"Text \(IMDB\) data not found.*does not exist(.|\n)*aclImdb_v1"):
        data.prepare_data()
    assert not (tmp_path / "cache").exists()


def test_no_root_is_an_error_saying_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"Text \(IMDB\) data not found: data\.root is not set.*aclImdb_v1\.tar\.gz.*--data\.root ROOT",
    ):
        make(None, tmp_path).prepare_data()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"val_fraction": 0.0}, "val_fraction must be a number strictly between 0 and 1, got 0.0"),
        ({"val_fraction": 1}, "val_fraction .* got 1$"),
        ({"val_fraction": -0.1}, "val_fraction .* got -0.1"),
        ({"val_fraction": True}, "val_fraction .* got True"),
        ({"validation": "val"}, "data.validation must be one of train_slice, test or null .*, got 'val'"),
        ({"seed": 1.5}, "seed must be an integer, got 1.5"),
        ({"max_length": 0}, "max_length .* got 0"),
        ({"batch_size": 0}, "batch_size .* got 0"),
    ],
)
def test_bad_settings_are_errors(tmp_path: Path, change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(tmp_path, tmp_path, **change)


def test_second_prepare_hits_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_imdb(tmp_path / "data")
    first = ready(make(root, tmp_path / "cache"))
    assert is_cached(first.cache_path) and first.cache_path.name.startswith("text-imdb-")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been hit")

    monkeypatch.setattr(text_module, "read_review", refuse)
    monkeypatch.setattr(text_module, "tokenize_bytes", refuse)
    # The aclImdb folder itself as root resolves to the same files, so the same cache.
    second = ready(make(root / "aclImdb", tmp_path / "cache"))
    assert second.cache_path == first.cache_path
    assert tokens_of(second, "val") == tokens_of(first, "val")


@pytest.mark.parametrize(
    "change",
    [{"max_length": 100}, {"seed": 1}, {"val_fraction": 0.2}, {"validation": "test"}],
    ids=["max_length", "seed", "val_fraction", "validation"],
)
def test_changed_settings_use_another_cache_folder(tmp_path: Path, change: dict[str, object]) -> None:
    root = write_imdb(tmp_path / "data")
    assert make(root, tmp_path).cache_path != make(root, tmp_path, **change).cache_path


def test_slice_settings_do_not_matter_when_test_is_validation(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data")
    official = make(root, tmp_path, validation="test")
    assert official.cache_path == make(root, tmp_path, validation="test", seed=3).cache_path
    assert official.cache_path == make(root, tmp_path, protocol="faithful").cache_path
    with pytest.raises(ValueError, match=r"data\.val_fraction .* only data\.validation train_slice uses"):
        make(root, tmp_path, validation="test", val_fraction=0.3)


def test_changed_data_uses_another_cache_folder(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "data")
    before = ready(make(root, tmp_path / "cache")).cache_path
    (root / "aclImdb" / "test" / "pos" / "4_8.txt").write_bytes(b"One more review.")
    after = ready(make(root, tmp_path / "cache"))
    assert after.cache_path != before
    assert len(after.dataset("test")) == 9


def test_loaders_yield_padded_batches(tmp_path: Path) -> None:
    data = ready(make(write_imdb(tmp_path / "data"), tmp_path / "cache", validation="test", batch_size=3))
    batches = list(data.test_dataloader())
    assert [len(batch["label"]) for batch in batches] == [3, 3, 2]
    batch = batches[0]
    assert set(batch) == {"tokens", "mask", "label"}
    lengths = [len(tokens) for tokens in tokens_of(data, "test")[:3]]
    assert batch["tokens"].shape == batch["mask"].shape == (3, max(lengths))
    assert (batch["tokens"].dtype, batch["mask"].dtype, batch["label"].dtype) == (torch.long, torch.bool, torch.long)
    assert batch["mask"].sum(1).tolist() == lengths
    assert batch["tokens"][~batch["mask"]].eq(0).all() and batch["tokens"][batch["mask"]].ge(1).all()
    # The training stream is endless: its first pass (3 + 3 + the first 2 of the third batch) is each example once.
    first_pass = [batch["tokens"] for batch in itertools.islice(data.train_dataloader(), 3)]
    drawn = [tuple(row[row > 0].tolist()) for tokens in first_pass for row in tokens][:8]
    assert sorted(drawn) == sorted(tuple(tokens) for tokens in tokens_of(data, "train"))


def test_config_system_builds_it_from_the_signature(tmp_path: Path) -> None:
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(TextDataModule, "data")
    config = parser.parse_args(["--data.root", str(tmp_path), "--data.validation", "test"])
    data = parser.instantiate(config).data
    assert isinstance(data, TextDataModule)
    assert (data.root, data.validation, data.val_fraction, data.max_length) == (str(tmp_path), "test", 0.1, 4000)
    with pytest.raises(jsonargparse.ArgumentError):
        parser.parse_args(["--data.root", str(tmp_path), "--data.validation", "eval"])
