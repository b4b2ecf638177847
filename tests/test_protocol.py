"""The protocol switch: faithful (protocol 2's code, quirks included) against clean, on the data side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.pathfinder import write_pathfinder
from helpers.text import write_imdb

from lra.data import ListOpsDataModule, ListOpsSpec, PathfinderDataModule, TextDataModule
from lra.data.listops import ALPHANUMERIC_VOCAB, OUT_OF_VOCABULARY, VOCAB_SIZE, tokenize_listops
from lra.protocol import padded_length

TINY_LISTOPS = {
    "num_train": 40,
    "num_val": 20,
    "num_test": 20,
    "max_length": 40,
    "batch_size": 8,
    "generate_workers": 1,
}


def tiny_listops(cache: Path, **overrides: object) -> ListOpsDataModule:
    settings = {**TINY_LISTOPS, "spec": ListOpsSpec(max_depth=3, min_length=5, max_length=40), **overrides}
    return ListOpsDataModule(cache_dir=str(cache), **settings)


def test_alphanumeric_listops_drops_every_bracket() -> None:
    """The official pipeline's tokenizer keeps alphanumeric runs only: `( ( ( [MAX 2 ) 9 ) ] )` -> MAX 2 9."""
    ids = tokenize_listops("( ( ( [MAX 2 ) 9 ) ] )", tokenization="alphanumeric")
    assert ids.tolist() == [ALPHANUMERIC_VOCAB["MAX"], ALPHANUMERIC_VOCAB["2"], ALPHANUMERIC_VOCAB["9"]] == [12, 3, 10]
    nested = "( ( ( [SM ( ( ( [MIN 4 ) 7 ) ] ) ) ( ( [MED 1 ) 0 ] ) ) ] )"
    assert tokenize_listops(nested, tokenization="alphanumeric").tolist() == [14, 11, 5, 8, 13, 2, 1]
    assert tokenize_listops(nested, tokenization="closing_x").tolist() == [14, 11, 5, 8, 15, 13, 2, 1, 15, 15]


def test_the_alphanumeric_vocabulary_and_its_out_of_vocabulary_id() -> None:
    assert sorted(ALPHANUMERIC_VOCAB) == sorted(["MIN", "MAX", "MED", "SM", *map(str, range(10))])
    assert sorted(ALPHANUMERIC_VOCAB.values()) == list(range(1, 15))  # 0 is padding
    assert OUT_OF_VOCABULARY == 15 and VOCAB_SIZE == 16
    # An alphanumeric word the vocabulary lacks gets the encoder's OOV id; a number is one word, as tfds splits it.
    assert tokenize_listops("( [FIRST 12 ) 3 ]", tokenization="alphanumeric").tolist() == [15, 15, 4]
    with pytest.raises(ValueError, match="unknown ListOps token '12'"):
        tokenize_listops("( [MAX 12 ) 3 ]", tokenization="closing_x")


def test_listops_tokenization_follows_the_protocol(tmp_path: Path) -> None:
    faithful, clean = tiny_listops(tmp_path), tiny_listops(tmp_path, protocol="clean")
    assert (faithful.tokenization, clean.tokenization) == ("alphanumeric", "closing_x")
    assert tiny_listops(tmp_path, tokenization="closing_x").tokenization == "closing_x"  # an explicit ablation
    for data in (faithful, clean):
        data.prepare_data()
        data.setup()
    faithful_tokens = np.concatenate([faithful.dataset("train")[i][0] for i in range(40)])
    clean_tokens = np.concatenate([clean.dataset("train")[i][0] for i in range(40)])
    assert 15 not in faithful_tokens and 15 in clean_tokens  # no closing X once the brackets are dropped
    assert len(clean_tokens) > len(faithful_tokens)


def test_a_faithful_cache_is_never_served_to_a_clean_run(tmp_path: Path) -> None:
    faithful = tiny_listops(tmp_path)
    faithful.prepare_data()
    clean = tiny_listops(tmp_path, protocol="clean")
    assert clean.cache_path != faithful.cache_path
    assert tiny_listops(tmp_path, tokenization="alphanumeric", protocol="clean").cache_path == faithful.cache_path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: tiny_listops(root, protocol="fast"), "data.protocol must be one of faithful, clean, got 'fast'"),
        (
            lambda root: tiny_listops(root, tokenization="words"),
            "data.tokenization must be one of alphanumeric, closing_x or null, got 'words'",
        ),
        (
            lambda root: TextDataModule(root=str(root), val_fraction=0.2),
            "data.val_fraction .* only data.validation train_slice uses .* under data.protocol faithful Text "
            "validates on its test split",
        ),
    ],
)
def test_bad_protocol_settings_name_the_key_the_value_and_the_choices(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(tmp_path)


def test_text_validates_on_test_under_faithful_and_on_a_train_slice_under_clean(tmp_path: Path) -> None:
    root = write_imdb(tmp_path / "imdb", per_split_class=10)
    faithful = TextDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), batch_size=4)
    clean = TextDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), batch_size=4, protocol="clean")
    assert (faithful.validation, clean.validation) == ("test", "train_slice")
    assert faithful.reviews("val") == faithful.reviews("test")
    assert not set(clean.reviews("val")) & set(clean.reviews("test"))
    assert clean.cache_path != faithful.cache_path


def first_batch(data: PathfinderDataModule, split: str = "train") -> dict[str, torch.Tensor]:
    data.prepare_data()
    data.setup()
    loader = {"train": data.train_dataloader, "test": data.test_dataloader}[split]()
    return next(iter(loader))


def test_pathfinder_faithful_mask_is_pixel_not_zero_and_clean_is_all_real(tmp_path: Path) -> None:
    root = write_pathfinder(tmp_path / "pf", n=40)
    settings = {"root": str(root), "cache_dir": str(tmp_path / "cache"), "batch_size": 8, "workers": 1}
    faithful = first_batch(PathfinderDataModule(**settings))
    clean = first_batch(PathfinderDataModule(**settings, protocol="clean"))
    assert torch.equal(faithful["mask"], faithful["tokens"] != 0)
    assert not faithful["mask"].all()
    assert clean["mask"].all() and clean["tokens"].shape == (8, 1024)
    assert padded_length(1024) == 1024


def test_faithful_test_batches_drop_the_last_partial_one_and_clean_scores_all(tmp_path: Path) -> None:
    root = write_pathfinder(tmp_path / "pf", n=100)  # test split: 10 images
    settings = {"root": str(root), "cache_dir": str(tmp_path / "cache"), "batch_size": 4, "workers": 1}
    faithful, clean = PathfinderDataModule(**settings), PathfinderDataModule(**settings, protocol="clean")
    for data in (faithful, clean):
        data.prepare_data()
        data.setup()
    faithful_sizes = [len(batch["label"]) for batch in faithful.test_dataloader()]
    clean_sizes = [len(batch["label"]) for batch in clean.test_dataloader()]
    assert faithful_sizes == [4, 4] and clean_sizes == [4, 4, 2]
    # The faithful order is a seeded shuffle: the same every time, and not the split's own order.
    order = [batch["tokens"] for batch in faithful.test_dataloader()]
    again = [batch["tokens"] for batch in faithful.test_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(order, again, strict=True))
    in_order = torch.cat([batch["tokens"] for batch in clean.test_dataloader()])[:8]
    assert not torch.equal(torch.cat(order), in_order)
