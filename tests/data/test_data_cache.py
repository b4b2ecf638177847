"""The token cache (folder names, atomic writes, memory-mapped ragged arrays), the collate and the dataset."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lra.data.base import Collate, RaggedDataset
from lra.data.cache import (
    FORMAT_VERSION,
    RaggedSplit,
    atomic_folder,
    cache_folder,
    cache_root,
    is_cached,
    read_settings,
    token_dtype,
    write_cache,
)

EXAMPLES = {
    "train": [([1, 2, 3], 0), (np.array([4, 5], dtype=np.int64), 1), ([6], 2)],
    "val": [([7, 8, 9, 10], 1)],
    "test": [([11], 0), ([12, 13], 1)],
}


def test_cache_root_prefers_argument_then_environment_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRA_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("LRA_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "lra"


def test_folder_name_is_prefix_and_hash_of_the_settings(tmp_path: Path) -> None:
    folder = cache_folder(tmp_path, "listops-generated", {"a": 1, "b": [1, 2]})
    prefix, digest = folder.name.rsplit("-", 1)
    assert folder.parent == tmp_path and prefix == "listops-generated"
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert cache_folder(tmp_path, "listops-generated", {"b": [1, 2], "a": 1}) == folder  # order-free
    assert cache_folder(tmp_path, "listops-generated", {"a": 2, "b": [1, 2]}) != folder


def test_smallest_token_dtype() -> None:
    assert token_dtype(16) == np.uint8
    assert token_dtype(256) == np.uint8
    assert token_dtype(257) == np.uint16
    assert token_dtype(65537) == np.uint32


@pytest.mark.parametrize("vocab_size", [16, 300])
def test_written_splits_read_back_memory_mapped(tmp_path: Path, vocab_size: int) -> None:
    folder = tmp_path / "cache-x"
    assert not is_cached(folder)
    write_cache(folder, {"task": "toy"}, vocab_size, EXAMPLES)
    assert is_cached(folder)
    description = read_settings(folder)
    assert description["settings"] == {"task": "toy"}
    assert description["format_version"] == FORMAT_VERSION
    assert description["sizes"] == {"train": 3, "val": 1, "test": 2}
    for split, examples in EXAMPLES.items():
        data = RaggedSplit.open(folder, split)
        assert len(data.tokens) == 1 and isinstance(data.tokens[0], np.memmap)
        assert data.tokens[0].dtype == token_dtype(vocab_size)
        assert data.offsets[0].dtype == np.int64 and data.labels.dtype == np.int64
        assert len(data) == len(examples)
        for index, (tokens, label) in enumerate(examples):
            got_tokens, got_label = data[index]
            assert got_tokens.tolist() == list(tokens) and got_label == label


def test_token_ids_beyond_the_vocabulary_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token id 20 >= vocab_size 16"):
        write_cache(tmp_path / "bad", {}, 16, {"train": [([1, 20], 0)]})
    assert list(tmp_path.iterdir()) == []


def test_negative_token_ids_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split 'val', example 1: token id -3 < 0"):
        write_cache(tmp_path / "bad", {}, 16, {"val": [([1], 0), (np.array([2, -3]), 0)]})
    assert list(tmp_path.iterdir()) == []


def test_tokens_are_copied_to_disk_in_chunks_and_scratch_files_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lra.data.cache._COPY_CHUNK", 4)  # many chunks, one ending mid-sequence
    sequences = [np.arange(start, start + 7) % 300 for start in range(0, 70, 7)]
    write_cache(tmp_path / "cache-x", {}, 300, {"train": [(tokens, 1) for tokens in sequences], "val": []})
    assert sorted(path.suffix for path in (tmp_path / "cache-x").iterdir()) == [".json"] + [".npy"] * 6
    data = RaggedSplit.open(tmp_path / "cache-x", "train")
    assert [data[index][0].tolist() for index in range(10)] == [tokens.tolist() for tokens in sequences]
    assert len(RaggedSplit.open(tmp_path / "cache-x", "val")) == 0


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    def broken() -> object:
        yield [1, 2], 0
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_cache(tmp_path / "cache-x", {}, 16, {"train": broken()})
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_loses_the_race_keeps_the_winner(tmp_path: Path) -> None:
    folder = tmp_path / "cache-x"
    with atomic_folder(folder) as temporary:
        (temporary / "who").write_text("second")
        write_cache(folder, {"task": "toy"}, 16, EXAMPLES)  # another writer finishes first
    assert read_settings(folder)["settings"] == {"task": "toy"}
    assert not (folder / "who").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["cache-x"]


def test_a_folder_without_settings_is_not_a_hit(tmp_path: Path) -> None:
    (tmp_path / "cache-x").mkdir()
    assert not is_cached(tmp_path / "cache-x")


def test_collate_pads_to_the_longest_sequence() -> None:
    batch = [
        (np.array([3, 1], dtype=np.uint8), 4),
        (np.array([5, 6, 7, 8], dtype=np.uint8), 0),
        (np.array([0], dtype=np.uint8), 9),  # id 0 inside a sequence is still a real token
    ]
    out = Collate()(batch)
    assert set(out) == {"tokens", "mask", "label"}
    assert out["tokens"].dtype == torch.long and out["mask"].dtype == torch.bool and out["label"].dtype == torch.long
    assert out["tokens"].tolist() == [[3, 1, 0, 0], [5, 6, 7, 8], [0, 0, 0, 0]]
    assert out["mask"].tolist() == [[True, True, False, False], [True] * 4, [True, False, False, False]]
    assert out["label"].tolist() == [4, 0, 9]


def test_faithful_collate_masks_every_zero_id_as_the_reference_does() -> None:
    """Protocol 2's `mask = input_ids != 0`: a 0 inside a sequence (a black pixel) is masked like padding."""
    batch = [(np.array([3, 0, 1], dtype=np.uint8), 4), (np.array([0, 5], dtype=np.uint8), 1)]
    out = Collate(mask_zeros=True)(batch)
    assert out["tokens"].tolist() == [[3, 0, 1], [0, 5, 0]]
    assert out["mask"].tolist() == [[True, False, True], [False, True, False]]
    pairs = Collate(two_tower=True, mask_zeros=True)([((np.array([0, 2]), np.array([7])), 1)])
    assert pairs["mask_a"].tolist() == [[False, True]] and pairs["mask_b"].tolist() == [[True]]


def test_dataset_pickles_by_reopening_the_memory_maps(tmp_path: Path) -> None:
    write_cache(tmp_path / "cache-x", {}, 16, EXAMPLES)
    dataset = RaggedDataset(tmp_path / "cache-x", "train")
    copy = pickle.loads(pickle.dumps(dataset))
    assert len(pickle.dumps(dataset)) < 500
    assert len(copy) == 3
    assert [(tokens.tolist(), label) for tokens, label in (copy[i] for i in range(3))] == [
        ([1, 2, 3], 0),
        ([4, 5], 1),
        ([6], 2),
    ]


PAIRS = {
    "train": [(([1, 2, 3], [4]), 1), ((np.array([5], dtype=np.int64), [6, 7]), 0)],
    "val": [(([8], [9, 10, 11]), 1)],
    "test": [(([12, 13], [14]), 0)],
}


def test_two_tower_splits_keep_both_sequences_and_one_label_array(tmp_path: Path) -> None:
    folder = tmp_path / "cache-pairs"
    write_cache(folder, {"task": "pairs"}, 300, PAIRS, towers=2)
    assert read_settings(folder)["towers"] == 2
    assert sorted(path.name for path in folder.glob("train.*")) == [
        "train.labels.npy",
        "train.offsets_a.npy",
        "train.offsets_b.npy",
        "train.tokens_a.npy",
        "train.tokens_b.npy",
    ]
    dataset = RaggedDataset(folder, "train", towers=2)
    copy = pickle.loads(pickle.dumps(dataset))
    for data in (dataset, copy):
        (a, b), label = data[0]
        assert (a.tolist(), b.tolist(), label) == ([1, 2, 3], [4], 1)
        (a, b), label = data[1]
        assert (a.tolist(), b.tolist(), label) == ([5], [6, 7], 0)
    assert dataset.data.lengths(0).tolist() == [3, 1] and dataset.data.lengths(1).tolist() == [1, 2]


def test_a_two_tower_example_must_have_two_sequences(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 2 sequences per example, got 3"):
        write_cache(tmp_path / "bad", {}, 16, {"train": [(([1], [2], [3]), 0)]}, towers=2)
    with pytest.raises(ValueError, match="towers must be 1 or 2, got 3"):
        write_cache(tmp_path / "bad", {}, 16, {"train": []}, towers=3)


def test_collate_pairs_pads_each_tower_to_its_own_longest() -> None:
    batch = [
        ((np.array([1, 2, 3], dtype=np.uint8), np.array([4], dtype=np.uint8)), 1),
        ((np.array([5], dtype=np.uint8), np.array([6, 7], dtype=np.uint8)), 0),
    ]
    out = Collate(two_tower=True)(batch)
    assert set(out) == {"tokens_a", "mask_a", "tokens_b", "mask_b", "label"}
    assert out["tokens_a"].tolist() == [[1, 2, 3], [5, 0, 0]]
    assert out["mask_a"].tolist() == [[True, True, True], [True, False, False]]
    assert out["tokens_b"].tolist() == [[4, 0], [6, 7]]
    assert out["mask_b"].tolist() == [[True, False], [True, True]]
    assert out["label"].tolist() == [1, 0]
