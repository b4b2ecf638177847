"""Pathfinder / Path-X: the metadata reader, PNG tokens, the seeded 80/10/10 split and the DataModule."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.pathfinder import metadata_line, write_pathfinder
from PIL import Image

import lra.data.pathfinder as pathfinder_module
from lra.data.cache import is_cached, read_settings
from lra.data.pathfinder import (
    PathfinderDataModule,
    decode_png,
    decode_pngs,
    read_pathfinder_index,
    split_indices,
    split_sizes,
)

LEVEL = "pathfinder32/curv_contour_length_14"


def make(tmp_path: Path, root: Path | None, **overrides: object) -> PathfinderDataModule:
    settings: dict[str, object] = {
        "batch_size": 8,
        "num_workers": 0,
        "cache_dir": str(tmp_path / "cache"),
        "workers": 1,
    }
    settings.update(overrides)
    return PathfinderDataModule(root=None if root is None else str(root), **settings)  # type: ignore[arg-type]


def ready(data: PathfinderDataModule) -> PathfinderDataModule:
    data.prepare_data()
    data.setup("fit")
    return data


def save(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image if mode is None else image.convert(mode)).save(path)
    return path


def test_sizes_for_the_model() -> None:
    data = PathfinderDataModule()
    assert (data.vocab_size, data.num_classes, data.max_length, data.fixed_length, data.two_tower) == (
        256,
        2,
        1024,
        True,
        False,
    )
    assert data.reference_sizes() == {"train": 160_000, "val": 20_000, "test": 20_000}
    assert PathfinderDataModule(resolution=128).max_length == 16_384  # Path-X
    assert PathfinderDataModule(root="x", difficulty=6).reference_sizes() == {
        "train": 159_999,  # the release's empty pathfinder32/curv_baseline image is skipped
        "val": 20_000,
        "test": 20_000,
    }
    assert PathfinderDataModule(num_images=40).reference_sizes() == {"train": 32, "val": 4, "test": 4}


def test_png_pixels_become_row_major_tokens(tmp_path: Path) -> None:
    pixels = (np.arange(32 * 32) % 251).astype(np.uint8).reshape(32, 32)
    pixels[2, 7] = 255
    tokens = decode_png(str(save(tmp_path / "a.png", pixels)), 32)
    assert tokens.dtype == np.uint8 and tokens.shape == (1024,)
    assert tokens[2 * 32 + 7] == 255 and tokens[0] == 0 and tokens[33] == 33
    assert np.array_equal(tokens, pixels.reshape(-1))


def test_colour_and_palette_pngs_of_gray_pixels_read_the_same(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    for mode in ("RGB", "RGBA", "LA", "P"):
        assert np.array_equal(decode_png(str(save(tmp_path / f"{mode}.png", pixels, mode)), 32), pixels.reshape(-1))


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda path: save(path, np.zeros((32, 31), np.uint8)), r"expected a 32×32 image, got 31×32"),
        (lambda path: save(path, np.zeros((64, 64), np.uint8)), r"expected a 32×32 image, got 64×64"),
        (lambda path: save(path, np.zeros((32, 32), np.uint16) + 300), r"expected an 8-bit grayscale PNG.*mode I;16"),
        (lambda path: path.write_bytes(b""), r"not a readable PNG image"),
        (lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\nbroken"), r"not a readable PNG image"),
        (lambda path: Image.new("L", (32, 32)).save(path, format="JPEG"), r"not a readable PNG image"),
    ],
    ids=["narrow", "large", "16-bit", "empty", "corrupt", "jpeg"],
)
def test_bad_images_name_the_file(tmp_path: Path, write: object, message: str) -> None:
    path = tmp_path / "imgs" / "0" / "sample_3.png"
    path.parent.mkdir(parents=True)
    write(path)  # type: ignore[operator]
    with pytest.raises(ValueError, match=rf"imgs/0/sample_3\.png: {message}"):
        decode_png(str(path), 32)


def test_truncated_png_names_the_file(tmp_path: Path) -> None:
    path = save(tmp_path / "sample_0.png", np.random.default_rng(1).integers(0, 256, (32, 32), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-60])
    with pytest.raises(ValueError, match=r"sample_0\.png: not a readable PNG image"):
        decode_png(str(path), 32)


def test_index_follows_metadata_files_numerically_then_lines(tmp_path: Path) -> None:
    root = write_pathfinder(tmp_path, n=40, shard_size=3)  # shards 0..13: metadata/10.npy comes after 9.npy
    level = root / LEVEL
    images = read_pathfinder_index(level, 32, 14)
    expected = [str(level / f"imgs/{k // 3}/sample_{k % 3}.png") for k in range(40)]
    assert [image.path for image in images] == expected
    labels = [int(line.split()[3]) for k in range(14) for line in (level / f"metadata/{k}.npy").read_text().split("\n")
              if line]  # fmt: skip
    assert [image.label for image in images] == labels


def test_blank_metadata_lines_are_ignored(tmp_path: Path) -> None:
    level = write_pathfinder(tmp_path, n=20) / LEVEL
    path = level / "metadata" / "2.npy"
    path.write_text("\n" + path.read_text() + "\n  \n")
    assert len(read_pathfinder_index(level, 32, 14)) == 20


@pytest.mark.parametrize(
    ("line", "exception", "message"),
    [
        ("imgs/1 sample_0.png 0\n", ValueError, r"expected at least 4 whitespace-separated fields.*got 3"),
        ("imgs/1 sample_0.png 0 2 1.0 14\n", ValueError, r"expected a label 0 or 1 in field 4, got '2'"),
        ("imgs/1 sample_0.png 0 yes\n", ValueError, r"expected a label 0 or 1 in field 4, got 'yes'"),
        ("imgs/1 sample_9.png 9 1\n", FileNotFoundError, r"the image .*imgs/1/sample_9\.png does not exist"),
        ("imgs/77 sample_0.png 0 1\n", FileNotFoundError, r"the image .*imgs/77/sample_0\.png does not exist"),
    ],
    ids=["three-fields", "label-2", "label-word", "missing-image", "missing-folder"],
)
def test_bad_metadata_names_the_file_and_line(
    tmp_path: Path, line: str, exception: type[Exception], message: str
) -> None:
    level = write_pathfinder(tmp_path, n=20) / LEVEL
    path = level / "metadata" / "1.npy"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines[:2], line, *lines[2:]]))
    with pytest.raises(exception, match=rf"metadata/1\.npy, line 3: {message}"):
        read_pathfinder_index(level, 32, 14)


def test_metadata_folder_problems_are_errors(tmp_path: Path) -> None:
    level = write_pathfinder(tmp_path, n=20) / LEVEL
    (level / "metadata" / "extra.npy").write_text(metadata_line(0, 0, 1, 14))
    with pytest.raises(ValueError, match=r"metadata/extra\.npy: expected metadata files named <k>\.npy"):
        read_pathfinder_index(level, 32, 14)
    shutil.rmtree(level / "metadata")
    (level / "metadata").mkdir()
    with pytest.raises(FileNotFoundError, match=r"metadata: no metadata files"):
        read_pathfinder_index(level, 32, 14)


def test_the_release_empty_image_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = write_pathfinder(tmp_path / "data", difficulty=6, n=20, empty_sample_172=True)
    level = root / "pathfinder32/curv_baseline"
    with pytest.warns(UserWarning, match=r"skipping .*pathfinder32/curv_baseline/imgs/0/sample_172\.png: the "
                      r"release's known empty image \(listed in .*metadata/0\.npy, line 2\)"):  # fmt: skip
        images = read_pathfinder_index(level, 32, 6)
    assert len(images) == 20 and all("sample_172" not in image.path for image in images)
    with pytest.warns(UserWarning, match="known empty image"):
        data = ready(make(tmp_path, root, difficulty=6))
    assert sum(len(data.dataset(split)) for split in ("train", "val", "test")) == 20


def test_an_empty_image_anywhere_else_is_an_error(tmp_path: Path) -> None:
    root = write_pathfinder(tmp_path / "data", difficulty=14, n=20, empty_sample_172=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_pathfinder_index(root / LEVEL, 32, 14)) == 21
        with pytest.raises(ValueError, match=r"imgs/0/sample_172\.png: not a readable PNG image"):
            make(tmp_path, root).prepare_data()
    assert list((tmp_path / "cache").iterdir()) == []


def test_split_is_80_10_10_of_a_seeded_permutation() -> None:
    assert split_sizes(200_000) == {"train": 160_000, "val": 20_000, "test": 20_000}
    assert split_sizes(40) == {"train": 32, "val": 4, "test": 4}
    assert split_sizes(25) == {"train": 19, "val": 3, "test": 3}  # 2.5 rounds up
    splits = split_indices(1000, seed=0)
    assert [len(indices) for indices in splits.values()] == [800, 100, 100]
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(1000))
    assert all(np.array_equal(indices, np.sort(indices)) for indices in splits.values())
    assert all(np.array_equal(splits[s], split_indices(1000, seed=0)[s]) for s in splits)
    assert not np.array_equal(splits["val"], split_indices(1000, seed=1)["val"])
    assert not np.array_equal(splits["val"], np.arange(800, 900))  # not simply the tail


def test_splits_hold_the_permuted_images_with_their_labels(tmp_path: Path) -> None:
    root = write_pathfinder(tmp_path / "data", n=40, seed=3, split_seed=5)
    data = ready(make(tmp_path, root, seed=5))
    images = read_pathfinder_index(root / LEVEL, 32, 14)
    for split, indices in split_indices(40, seed=5).items():
        dataset = data.dataset(split)
        assert len(dataset) == len(indices)
        for row, index in enumerate(indices):
            tokens, label = dataset[row]
            assert label == images[index].label
            assert np.array_equal(tokens, np.asarray(Image.open(images[index].path)).reshape(-1))
        assert sorted({dataset[row][1] for row in range(len(dataset))}) == [0, 1]
    assert read_settings(data.cache_path)["sizes"] == {"train": 32, "val": 4, "test": 4}
    assert data.describe() == (
        f"Pathfinder 32×32 curv_contour_length_14 (official, {root}): 32/4/4 (80/10/10, split seed 5)"
    )


def test_loaders_yield_full_length_batches_without_padding(tmp_path: Path) -> None:
    data = ready(make(tmp_path, write_pathfinder(tmp_path / "data", n=40), batch_size=3, protocol="clean"))
    batches = list(data.test_dataloader())
    assert [len(batch["label"]) for batch in batches] == [3, 1]
    batch = batches[0]
    assert set(batch) == {"tokens", "mask", "label"}
    assert batch["tokens"].shape == batch["mask"].shape == (3, 1024)
    assert (batch["tokens"].dtype, batch["mask"].dtype, batch["label"].dtype) == (torch.long, torch.bool, torch.long)
    assert batch["mask"].all()


def test_path_x_images_are_16384_tokens(tmp_path: Path) -> None:
    root = write_pathfinder(tmp_path / "data", resolution=128, n=10, shard_size=4)
    data = ready(make(tmp_path, root, resolution=128))
    assert data.cache_path.name.startswith("pathfinder128-curv_contour_length_14-official-")
    batch = next(iter(data.train_dataloader()))
    assert batch["tokens"].shape == batch["mask"].shape == (8, 16_384)
    assert torch.equal(batch["mask"], batch["tokens"] != 0)  # faithful: black pixels are masked
    assert data.describe().startswith("Path-X 128×128 curv_contour_length_14 (official, ")


def test_decoding_in_worker_processes_gives_the_same_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    level = write_pathfinder(tmp_path, n=20) / LEVEL
    paths = [image.path for image in read_pathfinder_index(level, 32, 14)]
    monkeypatch.setattr(pathfinder_module, "DECODE_CHUNK", 6)
    one = list(decode_pngs(paths, 32, workers=1))
    two = list(decode_pngs(paths, 32, workers=2))
    assert [len(chunk) for chunk in two] == [6, 6, 6, 2]
    assert np.array_equal(np.concatenate(one), np.concatenate(two))
    assert np.array_equal(np.concatenate(two)[7], np.asarray(Image.open(paths[7])).reshape(-1))
    (level / "imgs/3/sample_1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"imgs/3/sample_1\.png: not a readable PNG image"):
        list(decode_pngs(paths, 32, workers=2))


@pytest.mark.parametrize(
    "layout",
    [".", "curv_contour_length_14", "", "lra_release", "lra_release/lra_release"],
    ids=["level", "difficulty", "pathfinder32-parent", "release-flattened", "release-nested"],
)
def test_level_is_found_in_every_layout(tmp_path: Path, layout: str) -> None:
    written = write_pathfinder(tmp_path / "written", n=20) / LEVEL
    if layout == ".":
        target, root = tmp_path / "data" / LEVEL, tmp_path / "data" / LEVEL
    elif layout == "curv_contour_length_14":
        target, root = tmp_path / "data" / "pathfinder32" / layout, tmp_path / "data" / "pathfinder32"
    else:
        target, root = tmp_path / "data" / layout / LEVEL, tmp_path / "data"
    target.parent.mkdir(parents=True, exist_ok=True)
    written.rename(target)
    data = ready(make(tmp_path, root))
    assert data.cache_path.name.startswith("pathfinder32-curv_contour_length_14-official-")
    assert sum(len(data.dataset(split)) for split in ("train", "val", "test")) == 20


def test_missing_data_names_the_paths_and_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        make(tmp_path, tmp_path / "missing", resolution=64, difficulty=9).prepare_data()
    message = str(error.value)
    for layout in ("", "pathfinder64/", "lra_release/pathfinder64/", "lra_release/lra_release/pathfinder64/"):
        assert f"{tmp_path}/missing/{layout}curv_contour_length_9/metadata" in message
    assert "lra_release.gz" in message
    assert "lra data generate pathfinder --out DIR --resolution 64 --difficulty 9" in message
    assert "data.root unset" in message
    assert not (tmp_path / "cache").exists()


def test_second_prepare_hits_the_cache_and_a_changed_metadata_file_invalidates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_pathfinder(tmp_path / "data", n=20)
    first = ready(make(tmp_path, root)).cache_path
    assert is_cached(first)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been hit")

    with monkeypatch.context() as patch:
        for name in ("read_pathfinder_index", "decode_pngs", "generate_pathfinder"):
            patch.setattr(pathfinder_module, name, refuse)
        assert ready(make(tmp_path, root)).cache_path == first
    path = root / LEVEL / "metadata" / "0.npy"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))  # drop one image
    changed = ready(make(tmp_path, root))
    assert changed.cache_path != first
    assert sum(len(changed.dataset(split)) for split in ("train", "val", "test")) == 19


@pytest.mark.parametrize(
    "change",
    [{"seed": 1}, {"difficulty": 9}, {"resolution": 64}, {"num_images": 41}],
    ids=["seed", "difficulty", "resolution", "num_images"],
)
def test_different_settings_use_a_different_cache_folder(tmp_path: Path, change: dict[str, object]) -> None:
    base = {"cache_dir": str(tmp_path), "num_images": 40}
    assert PathfinderDataModule(**base).cache_path != PathfinderDataModule(**{**base, **change}).cache_path  # type: ignore[arg-type]


def test_worker_counts_are_not_settings(tmp_path: Path) -> None:
    first = PathfinderDataModule(cache_dir=str(tmp_path), workers=1)
    assert first.cache_path == PathfinderDataModule(cache_dir=str(tmp_path), workers=3, num_workers=2).cache_path


def test_split_seed_changes_an_official_cache(tmp_path: Path) -> None:
    root = write_pathfinder(tmp_path / "data", n=20)
    assert make(tmp_path, root).cache_path != make(tmp_path, root, seed=1).cache_path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resolution": 48}, r"resolution must be one of 32, 64, 128, 256, got 48"),
        ({"difficulty": 7}, r"difficulty \(the contour length\) must be one of 6, 9, 14, got 7"),
        ({"num_images": 4}, r"num_images must be an integer >= 5, got 4"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"workers": 0}, r"workers must be None \(all cores\) or an integer >= 1, got 0"),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_are_errors(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PathfinderDataModule(**change)  # type: ignore[arg-type]


def test_generated_data_is_cached_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ready(make(tmp_path, None, num_images=40, difficulty=6, seed=2))
    names = sorted(path.name.rsplit("-", 1)[0] for path in (tmp_path / "cache").iterdir())
    assert names == ["pathfinder-generated-png", "pathfinder32-curv_baseline-generated"]
    level = data.level_folder()
    assert level.parts[-2:] == ("pathfinder32", "curv_baseline")
    images = read_pathfinder_index(level, 32, 6)
    assert len(images) == 40
    val = data.dataset("val")
    for row, index in enumerate(split_indices(40, seed=2)["val"]):
        tokens, label = val[row]
        assert label == images[index].label
        assert np.array_equal(tokens, decode_png(images[index].path, 32))
    assert read_settings(data.cache_path)["sizes"] == {"train": 32, "val": 4, "test": 4}
    assert data.describe() == "Pathfinder 32×32 curv_baseline (generated, seed 2): 32/4/4 (80/10/10, split seed 2)"

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been hit")

    for name in ("read_pathfinder_index", "decode_pngs", "generate_pathfinder"):
        monkeypatch.setattr(pathfinder_module, name, refuse)
    again = ready(make(tmp_path, None, num_images=40, difficulty=6, seed=2))
    assert again.cache_path == data.cache_path
    assert np.array_equal(again.dataset("val")[0][0], val[0][0])
