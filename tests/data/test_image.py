"""Image (CIFAR-10): the restricted pickle reader, the grayscale tokens, the 45k/5k/10k split and the DataModule."""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.image import cifar_batch, py2_pickle, py3_pickle, write_cifar

import lra.data.image as image_module
from lra.data.cache import is_cached, read_settings
from lra.data.image import ImageDataModule, cifar_grayscale, read_cifar_batch, split_train_val

RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array rebuilder, whatever its module in this numpy


def solid(red: int, green: int, blue: int) -> np.ndarray:
    """One (3072,) RGB-planar image of a single colour."""
    return np.repeat(np.array([red, green, blue], dtype=np.uint8), 1024)


def make(tmp_path: Path, root: Path | None, **overrides: object) -> ImageDataModule:
    settings: dict[str, object] = {"batch_size": 8, "num_workers": 0, "cache_dir": str(tmp_path / "cache")}
    settings.update(overrides)
    return ImageDataModule(root=None if root is None else str(root), **settings)  # type: ignore[arg-type]


def ready(data: ImageDataModule) -> ImageDataModule:
    data.prepare_data()
    data.setup("fit")
    return data


def write_batch(path: Path, batch: object) -> Path:
    path.write_bytes(py2_pickle(batch))
    return path


def test_sizes_for_the_model() -> None:
    data = ImageDataModule(root="unread/until/prepare_data")
    assert (data.vocab_size, data.num_classes, data.max_length, data.fixed_length, data.two_tower) == (
        256,
        10,
        1024,
        True,
        False,
    )
    assert data.reference_sizes() == {"train": 45_000, "val": 5_000, "test": 10_000}


# (R, G, B) -> grayscale, as TensorFlow 2.20's tf.image.rgb_to_grayscale gives it for uint8 images (computed once
# with TensorFlow outside this project; our numpy version agreed on all 340,615 colours tried). The second group
# are colours where ITU-R 601 rounding, floor(0.299 R + 0.587 G + 0.114 B + 0.5), is one level off.
TENSORFLOW_GRAYSCALE = [
    ((0, 0, 0), 0), ((255, 255, 255), 255), ((255, 0, 0), 76), ((0, 255, 0), 149), ((0, 0, 255), 29),
    ((1, 1, 1), 1), ((128, 128, 128), 128),
    ((180, 90, 185), 127), ((39, 27, 35), 31), ((15, 233, 248), 169), ((15, 120, 25), 77), ((55, 181, 95), 133),
    ((36, 123, 16), 84), ((75, 90, 215), 99), ((161, 144, 245), 160), ((200, 181, 171), 185), ((140, 30, 10), 60),
    ((155, 21, 66), 66), ((13, 147, 208), 114), ((15, 210, 5), 128), ((57, 114, 240), 111), ((89, 183, 238), 161),
    ((184, 74, 49), 104),
]  # fmt: skip


def test_colours_become_tensorflows_grayscale() -> None:
    """Protocol 2's code made its Image tokens with tf.image.rgb_to_grayscale; ours match it value for value."""
    luma = cifar_grayscale(np.stack([solid(*colour) for colour, _ in TENSORFLOW_GRAYSCALE]))
    assert luma.shape == (len(TENSORFLOW_GRAYSCALE), 1024) and luma.dtype == np.uint8
    assert [set(row.tolist()) for row in luma] == [{gray} for _, gray in TENSORFLOW_GRAYSCALE]
    grays = np.stack([solid(value, value, value) for value in range(256)])
    assert cifar_grayscale(grays)[:, 0].tolist() == list(range(256))


def test_pixels_are_read_planar_and_flattened_row_major() -> None:
    images = np.zeros((2, 3072), dtype=np.uint8)
    images[0, 3 * 32 + 5] = 255  # red plane, row 3, column 5
    images[1, 1024 + 31 * 32] = 255  # green plane, row 31, column 0
    luma = cifar_grayscale(images)
    assert np.flatnonzero(luma[0]).tolist() == [101] and luma[0, 101] == 76
    assert np.flatnonzero(luma[1]).tolist() == [992] and luma[1, 992] == 149


def test_official_python2_batch_is_read(tmp_path: Path) -> None:
    images = np.stack([solid(255, 0, 0), solid(0, 0, 255), solid(9, 9, 9)])
    path = write_batch(tmp_path / "data_batch_1", cifar_batch(images, [3, 0, 9]))
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()  # the pre-numpy-2 name, as released
    batch = read_cifar_batch(path)
    assert batch.images.dtype == np.uint8 and batch.images.shape == (3, 3072)
    assert np.array_equal(batch.images, images)
    assert batch.labels.tolist() == [3, 0, 9]


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_python3_pickles_of_the_same_dict_are_read(tmp_path: Path, protocol: int) -> None:
    images = np.stack([solid(1, 2, 3), solid(4, 5, 6)])
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(cifar_batch(images, [1, 2]), protocol=protocol))
    batch = read_cifar_batch(path)
    assert np.array_equal(batch.images, images) and batch.labels.tolist() == [1, 2]


class GlobalsRecorder(pickle.Unpickler):
    """An unpickler that notes every global a pickle loads (numpy's rebuilder resolved under either of its names)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.loaded: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> object:
        self.loaded.add((module, name))
        return RECONSTRUCT if name == "_reconstruct" else super().find_class(module, name)


def globals_loaded(data: bytes) -> set[tuple[str, str]]:
    recorder = GlobalsRecorder(data)
    recorder.load()
    return recorder.loaded


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    "numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"], ids=["numpy-1", "numpy-2"]
)
def test_batches_re_saved_by_python3_under_either_numpy_are_read(
    tmp_path: Path, protocol: int, numpy_module: str
) -> None:
    images = np.stack([solid(1, 2, 3), solid(250, 0, 7), solid(9, 9, 9)])
    official = read_cifar_batch(write_batch(tmp_path / "official", cifar_batch(images, [4, 0, 9])))
    data = py3_pickle(cifar_batch(images, [4, 0, 9]), protocol, numpy_module)
    numpy_globals = {(numpy_module, "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
    # Protocol 2 has no opcode for bytes: Python 3 writes each as _codecs.encode(str, "latin1").
    assert globals_loaded(data) == numpy_globals | ({("_codecs", "encode")} if protocol == 2 else set())
    path = tmp_path / "data_batch_1"
    path.write_bytes(data)
    batch = read_cifar_batch(path)
    assert np.array_equal(batch.images, images) and np.array_equal(batch.images, official.images)
    assert batch.images.dtype == np.uint8 and batch.labels.tolist() == official.labels.tolist() == [4, 0, 9]


class Call:
    """Unpickling this calls ``function(*args)``."""

    def __init__(self, function: object, *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.function, self.args


@pytest.mark.parametrize(
    "args",
    [
        ("abc", "lra_test_probe"),
        ("abc", "rot13"),
        ("abc", "utf-16"),
        (b"x" * 64, "zlib_codec"),
        (b"abc", "latin1"),
        ("abc", "latin1", "strict"),
        ("abc",),
    ],
    ids=["probe-codec", "str-to-str", "other-text-codec", "bytes-codec", "bytes-in", "errors-arg", "one-arg"],
)
def test_codecs_encode_may_only_turn_a_str_into_latin1_bytes(tmp_path: Path, args: tuple[object, ...]) -> None:
    asked: list[str] = []

    def probe(name: str) -> None:  # a codec search function: sees every lookup of a codec not yet known
        asked.append(name)

    path = tmp_path / "data_batch_4"
    path.write_bytes(py3_pickle({b"data": Call(codecs.encode, *args), b"labels": []}, 2, RECONSTRUCT.__module__))
    codecs.register(probe)
    try:
        with pytest.raises(ValueError, match=r"data_batch_4: .*refusing _codecs\.encode\(.*only as _codecs\.encode"):
            read_cifar_batch(path)
    finally:
        codecs.unregister(probe)
    assert "lra_test_probe" not in asked  # the real codec machinery was never reached


class Exploit:
    """Unpickling this runs a shell command (what a tampered batch file could do)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.target}",)


def test_pickles_that_would_run_code_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "data_batch_2"
    write_batch(path, {b"data": Exploit(target), b"labels": []})
    with pytest.raises(ValueError, match=r"data_batch_2: not a readable CIFAR-10 python batch: refusing to load the "
                       r"global (posix|os)\.system"):  # fmt: skip
        read_cifar_batch(path)
    assert not target.exists()
    write_batch(path, {b"data": eval})
    with pytest.raises(ValueError, match=r"refusing to load the global (__builtin__|builtins)\.eval"):
        read_cifar_batch(path)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([1, 2], r"expected a dict with b\"data\".*got a list"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, r"expected a dict with b\"data\".*got the keys \[b'data'\]"),
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, r"uint8 array \(N, 3072\), got uint8.*3071"),
        ({b"data": np.zeros((2, 3072), np.int64), b"labels": [0, 1]}, r"uint8 array \(N, 3072\), got int64"),
        ({b"data": np.zeros(3072, np.uint8), b"labels": [0]}, r"uint8 array \(N, 3072\), got uint8 array \(3072,\)"),
        ({b"data": [0] * 3072, b"labels": [0]}, r"uint8 array \(N, 3072\), got list"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"labels must be 0-9, got \[10\]"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, -1]}, r"labels must be 0-9, got \[-1\]"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1.5]}, r"b\"labels\" to be a list of integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, r"2 images in b\"data\" but 1 b\"labels\""),
    ],
    ids=["not-dict", "no-labels", "width", "dtype", "one-dim", "list-data", "label-10", "label-neg", "float", "count"],
)
def test_malformed_batches_name_the_file_and_what_was_expected(tmp_path: Path, batch: object, message: str) -> None:
    path = write_batch(tmp_path / "data_batch_3", batch)
    with pytest.raises(ValueError, match=f"data_batch_3: .*{message}"):
        read_cifar_batch(path)


@pytest.mark.parametrize("content", ["truncated", "garbage", "empty"])
def test_corrupt_pickles_name_the_file(tmp_path: Path, content: str) -> None:
    good = py2_pickle(cifar_batch(np.zeros((2, 3072), np.uint8), [0, 1]))
    data = {"truncated": good[: len(good) // 2], "garbage": b"\x80\x02not a pickle at all", "empty": b""}[content]
    path = tmp_path / "test_batch"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"test_batch: not a readable CIFAR-10 python batch"):
        read_cifar_batch(path)


def test_val_is_the_last_tenth_of_train_rounded() -> None:
    assert split_train_val(50_000) == 45_000
    assert split_train_val(100) == 90
    assert split_train_val(30) == 27
    assert split_train_val(25) == 22  # 2.5 rounds up to 3


def test_splits_hold_the_right_images_in_order(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "data", per_batch=20, seed=1)
    data = ready(make(tmp_path, root))
    folder = root / "cifar-10-batches-py"
    train = [read_cifar_batch(folder / f"data_batch_{index}") for index in range(1, 6)]
    tokens = cifar_grayscale(np.concatenate([batch.images for batch in train]))  # (100, 1024)
    labels = np.concatenate([batch.labels for batch in train]).tolist()
    test = read_cifar_batch(folder / "test_batch")
    expected = {
        "train": (tokens[:90], labels[:90]),
        "val": (tokens[90:], labels[90:]),  # the last 10 images of data_batch_5
        "test": (cifar_grayscale(test.images), test.labels.tolist()),
    }
    for split, (split_tokens, split_labels) in expected.items():
        dataset = data.dataset(split)
        assert len(dataset) == len(split_labels)
        assert [dataset[index][1] for index in range(len(dataset))] == split_labels
        assert np.array_equal(np.stack([dataset[index][0] for index in range(len(dataset))]), split_tokens)
        assert sorted(set(split_labels)) == list(range(10))  # the fixture puts every class in every split
    assert read_settings(data.cache_path)["sizes"] == {"train": 90, "val": 10, "test": 20}
    assert data.describe().endswith("90/10/20 (train/val/test; val = the last 10% of the training batches)")


def test_loaders_yield_full_length_batches_without_padding(tmp_path: Path) -> None:
    data = ready(make(tmp_path, write_cifar(tmp_path / "data")))
    batches = list(data.val_dataloader())
    assert [len(batch["label"]) for batch in batches] == [8, 2]
    batch = batches[0]
    assert set(batch) == {"tokens", "mask", "label"}
    assert batch["tokens"].shape == batch["mask"].shape == (8, 1024)
    assert (batch["tokens"].dtype, batch["mask"].dtype, batch["label"].dtype) == (torch.long, torch.bool, torch.long)
    assert batch["mask"].all()
    assert torch.equal(batch["tokens"][0], torch.from_numpy(data.dataset("val")[0][0].astype(np.int64)))


@pytest.mark.parametrize("layout", [".", "cifar-10-batches-py"], ids=["parent", "batch-folder"])
def test_root_may_be_the_batch_folder_or_its_parent(tmp_path: Path, layout: str) -> None:
    root = write_cifar(tmp_path / "data", per_batch=10)
    data = ready(make(tmp_path, root / layout))
    assert data.cache_path.name.startswith("image-cifar10-")
    assert [len(data.dataset(split)) for split in ("train", "val", "test")] == [45, 5, 10]


def test_second_prepare_hits_the_cache_and_a_changed_file_invalidates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_cifar(tmp_path / "data", per_batch=10)
    first = ready(make(tmp_path, root)).cache_path
    assert is_cached(first)

    def refuse(*args: object) -> None:
        raise AssertionError("the cache should have been hit")

    with monkeypatch.context() as patch:
        patch.setattr(image_module, "read_cifar_batch", refuse)
        assert ready(make(tmp_path, root)).cache_path == first
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(py2_pickle(cifar_batch(np.zeros((3, 3072), np.uint8), [0, 1, 2])))
    changed = ready(make(tmp_path, root))
    assert changed.cache_path != first
    assert len(changed.dataset("test")) == 3


def test_missing_data_names_the_paths_and_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        make(tmp_path, tmp_path / "missing").prepare_data()
    message = str(error.value)
    assert f"{tmp_path}/missing/data_batch_1" in message
    assert f"{tmp_path}/missing/cifar-10-batches-py/test_batch" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    with pytest.raises(
        FileNotFoundError,
        match=r"Image \(CIFAR-10\) data not found: data\.root is not set.*cifar-10-python\.tar\.gz.*--data\.root ROOT",
    ):
        make(tmp_path, None).prepare_data()
    assert not (tmp_path / "cache").exists()


def test_a_malformed_file_fails_without_leaving_a_cache(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "data", per_batch=10)
    write_batch(root / "cifar-10-batches-py" / "data_batch_4", cifar_batch(np.zeros((2, 3072), np.uint8), [0, 12]))
    with pytest.raises(ValueError, match=r"data_batch_4: labels must be 0-9, got \[12\]"):
        make(tmp_path, root).prepare_data()
    assert list((tmp_path / "cache").iterdir()) == []
