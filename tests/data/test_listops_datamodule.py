"""ListOpsDataModule: generated and official data, the token cache, batches and loaders."""

from __future__ import annotations

from pathlib import Path

import jsonargparse
import numpy as np
import pytest
import torch

import lra.data.listops as listops_module
from lra.data import ListOpsDataModule, ListOpsSpec
from lra.data.cache import is_cached, read_settings
from lra.data.generate.listops import generate_listops
from lra.data.listops import read_listops_tsv, tokenize_listops

TINY = ListOpsSpec(max_depth=4, max_args=4, min_length=10, max_length=60)


def make(cache: Path, **overrides: object) -> ListOpsDataModule:
    settings: dict[str, object] = {
        "num_train": 60,
        "num_val": 7,
        "num_test": 5,
        "spec": TINY,
        "max_length": 40,
        "batch_size": 4,
        "num_workers": 0,
        "cache_dir": str(cache),
        "generate_workers": 1,
    }
    settings.update(overrides)
    return ListOpsDataModule(**settings)  # type: ignore[arg-type]


def ready(data: ListOpsDataModule) -> ListOpsDataModule:
    data.prepare_data()
    data.setup("fit")
    return data


def forbid_work(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been hit")

    for name in names:
        monkeypatch.setattr(listops_module, name, refuse)


def test_sizes_for_the_model(tmp_path: Path) -> None:
    data = make(tmp_path)
    assert (data.vocab_size, data.num_classes, data.max_length, data.two_tower) == (16, 10, 40, False)


def test_prepare_data_builds_the_cache(tmp_path: Path) -> None:
    data = ready(make(tmp_path))
    folder = data.cache_path
    assert folder.parent == tmp_path
    assert folder.name.startswith("listops-generated-")
    assert is_cached(folder)
    description = read_settings(folder)
    assert description["sizes"] == {"train": 60, "val": 7, "test": 5}
    assert description["vocab_size"] == 16
    assert description["settings"]["max_length"] == 40
    tokens = np.load(folder / "train.tokens.npy", mmap_mode="r")
    offsets = np.load(folder / "train.offsets.npy", mmap_mode="r")
    labels = np.load(folder / "train.labels.npy", mmap_mode="r")
    assert (tokens.dtype, offsets.dtype, labels.dtype) == (np.uint8, np.int64, np.int64)
    assert offsets.shape == (61,) and labels.shape == (60,) and offsets[-1] == tokens.size
    assert np.diff(offsets).max() <= 40
    # The generated TSVs live in the cache root too, and nothing else does.
    names = sorted(path.name.rsplit("-", 1)[0] for path in tmp_path.iterdir())
    assert names == ["listops-generated", "listops-generated-tsv"]


def test_cached_tokens_match_the_generated_files(tmp_path: Path) -> None:
    data = ready(make(tmp_path))
    files = data.tsv_files()
    for split in ("train", "val", "test"):
        dataset = data.dataset(split)
        rows = list(read_listops_tsv(files[split]))
        assert len(dataset) == len(rows)
        for index, row in enumerate(rows):
            tokens, label = dataset[index]
            assert label == row.label
            assert tokens.tolist() == tokenize_listops(row.source, 40, tokenization="alphanumeric").tolist()


def test_second_module_with_same_settings_hits_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ready(make(tmp_path))
    expected = [batch["tokens"] for batch in first.val_dataloader()]
    forbid_work(monkeypatch, "generate_listops", "read_listops_tsv", "tokenize_listops")
    second = ready(make(tmp_path))
    assert second.cache_path == first.cache_path
    got = [batch["tokens"] for batch in second.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


def test_new_max_length_retokenises_without_regenerating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ready(make(tmp_path))
    forbid_work(monkeypatch, "generate_listops")
    second = ready(make(tmp_path, max_length=12))
    assert second.cache_path != first.cache_path
    assert max(len(second.dataset("train")[i][0]) for i in range(60)) == 12


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 1},
        {"num_train": 61},
        {"max_length": 41},
        {"spec": ListOpsSpec(max_depth=4, max_args=4, min_length=10, max_length=61)},
    ],
    ids=["seed", "num_train", "max_length", "spec"],
)
def test_different_settings_use_a_different_cache_folder(tmp_path: Path, change: dict[str, object]) -> None:
    assert make(tmp_path).cache_path != make(tmp_path, **change).cache_path


def test_generation_worker_count_is_not_a_setting(tmp_path: Path) -> None:
    assert make(tmp_path).cache_path == make(tmp_path, generate_workers=2, num_workers=3).cache_path


def test_batches_are_padded_with_a_correct_mask(tmp_path: Path) -> None:
    data = ready(make(tmp_path, batch_size=8))
    dataset = data.dataset("val")
    batch = next(iter(data.val_dataloader()))
    assert set(batch) == {"tokens", "mask", "label"}
    assert (batch["tokens"].dtype, batch["mask"].dtype, batch["label"].dtype) == (
        torch.long,
        torch.bool,
        torch.long,
    )
    lengths = [len(dataset[i][0]) for i in range(7)]
    assert batch["tokens"].shape == batch["mask"].shape == (7, max(lengths))
    assert batch["label"].shape == (7,)
    for row in range(7):
        tokens, label = dataset[row]
        assert batch["mask"][row].tolist() == [True] * lengths[row] + [False] * (max(lengths) - lengths[row])
        assert batch["tokens"][row, : lengths[row]].tolist() == tokens.tolist()
        assert batch["tokens"][row, lengths[row] :].eq(0).all()
        assert batch["label"][row].item() == label


def test_val_and_test_loaders_keep_the_last_partial_batch(tmp_path: Path) -> None:
    data = ready(make(tmp_path, protocol="clean"))
    assert [len(batch["label"]) for batch in data.val_dataloader()] == [4, 3]
    assert [len(batch["label"]) for batch in data.test_dataloader()] == [4, 1]
    faithful = ready(make(tmp_path))  # protocol 2's test loader drops its last partial batch
    assert [len(batch["label"]) for batch in faithful.test_dataloader()] == [4]


def test_train_order_is_shuffled_and_follows_the_torch_seed(tmp_path: Path) -> None:
    data = ready(make(tmp_path, batch_size=60))

    def order(seed: int) -> list[int]:
        torch.manual_seed(seed)
        return next(iter(data.train_dataloader()))["label"].tolist()

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert order(0) != [data.dataset("train")[i][1] for i in range(60)]


def test_loader_worker_processes_read_the_cache(tmp_path: Path) -> None:
    data = ready(make(tmp_path, num_workers=1))
    loader = data.val_dataloader()
    assert loader.persistent_workers
    assert sum(len(batch["label"]) for batch in loader) == 7


def write_official(folder: Path, spec: ListOpsSpec = TINY) -> dict[str, Path]:
    return generate_listops(folder, 30, 6, 5, seed=4, spec=spec, workers=1)


@pytest.mark.parametrize(
    "layout",
    ["lra_release/lra_release/listops-1000", "lra_release/listops-1000", "listops-1000", "."],
    ids=["release-nested", "release-flattened", "listops-1000", "flat"],
)
def test_official_files_are_read_in_every_layout(tmp_path: Path, layout: str) -> None:
    files = write_official(tmp_path / "data" / layout)
    data = ready(make(tmp_path / "cache", root=str(tmp_path / "data")))
    assert data.cache_path.name.startswith("listops-official-")
    for split in ("train", "val", "test"):
        labels = [row.label for row in read_listops_tsv(files[split])]
        assert [data.dataset(split)[i][1] for i in range(len(labels))] == labels
        assert len(data.dataset(split)) == len(labels)
    assert sum(len(batch["label"]) for batch in data.val_dataloader()) == 6
    assert sum(len(batch["label"]) for batch in data.test_dataloader()) == 4  # faithful: drop_last on test


def test_official_cache_is_hit_then_invalidated_by_a_changed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_official(tmp_path / "data")
    first = ready(make(tmp_path / "cache", root=str(tmp_path / "data"))).cache_path
    with monkeypatch.context() as patch:
        forbid_work(patch, "generate_listops", "read_listops_tsv", "tokenize_listops")
        assert ready(make(tmp_path / "cache", root=str(tmp_path / "data"))).cache_path == first
    with open(files["test"], "a") as file:
        file.write("7\t7\n")
    changed = ready(make(tmp_path / "cache", root=str(tmp_path / "data")))
    assert changed.cache_path != first
    assert len(changed.dataset("test")) == 6


def test_missing_official_data_names_the_paths_looked_at(tmp_path: Path) -> None:
    data = make(tmp_path / "cache", root=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError) as error:
        data.prepare_data()
    message = str(error.value)
    for layout in ("", "listops-1000/", "lra_release/listops-1000/", "lra_release/lra_release/listops-1000/"):
        assert f"{tmp_path}/missing/{layout}basic_train.tsv" in message
    assert "lra_release.gz" in message and "lra data generate listops" in message
    assert not (tmp_path / "cache").exists()


def test_malformed_official_file_fails_without_leaving_a_cache(tmp_path: Path) -> None:
    files = write_official(tmp_path / "data")
    with open(files["val"], "a") as file:
        file.write("( ( [MAX 2 ) 3 ] )\t11\n")
    data = make(tmp_path / "cache", root=str(tmp_path / "data"))
    with pytest.raises(ValueError, match=r"basic_val\.tsv, line 8: expected a Target label 0-9, got '11'"):
        data.prepare_data()
    assert list((tmp_path / "cache").iterdir()) == []


def test_loaders_before_setup_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="setup"):
        make(tmp_path).val_dataloader()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_train": 0}, "num_train.*0"),
        ({"batch_size": 0}, "batch_size.*0"),
        ({"max_length": 0}, "max_length.*0"),
        ({"num_workers": -1}, "num_workers.*-1"),
        ({"generate_workers": 0}, "generate_workers.*0"),
        ({"spec": {"max_depth": 3}}, "spec must be a ListOpsSpec"),
    ],
)
def test_bad_arguments_are_errors(tmp_path: Path, change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(tmp_path, **change)


def test_config_system_builds_it_from_the_signature(tmp_path: Path) -> None:
    # LightningCLI (jsonargparse) reads ListOpsDataModule's typed signature, ListOpsSpec included.
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(ListOpsDataModule, "data")
    config = parser.parse_args(
        ["--data.spec.max_depth", "3", "--data.spec.min_length", "5", "--data.cache_dir", str(tmp_path)]
    )
    data = parser.instantiate(config).data
    assert isinstance(data, ListOpsDataModule)
    assert data.spec == ListOpsSpec(max_depth=3, max_args=10, min_length=5, max_length=2000)
    assert data.cache_dir == str(tmp_path)
