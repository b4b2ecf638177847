"""Image (LRA; Tay et al., 2021): CIFAR-10 (Krizhevsky, 2009) as 1024 grayscale tokens: reader and DataModule.

The user's `cifar-10-batches-py` pickles (the official Python 2 files, or the same dicts re-saved by Python 3)
are read with a restricted unpickler that can only rebuild numpy arrays and byte strings (never run code). Each
32×32 RGB image becomes its grayscale exactly as protocol 2's code made it, with TensorFlow's
`tf.image.rgb_to_grayscale` on uint8 images, flattened row-major: vocabulary 256, no padding (0 is a black pixel,
which the faithful protocol masks like padding, as the reference code does). Train is the first 45,000 images
of data_batch_1..5, val the last 5,000 (the last 10% of train), test the 10,000 of test_batch.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lra.data.base import LRADataModule
from lra.data.cache import file_fingerprints, is_cached, read_settings
from lra.data.layout import find_layout
from lra.protocol import Protocol

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_FILE = "test_batch"
# Where the batch files may sit under a root: the folder itself, or its parent (where the archive was unpacked).
LAYOUTS = (".", CIFAR_FOLDER)
SIDE = 32
PIXELS = SIDE * SIDE  # 1024 tokens per image
VOCAB_SIZE = 256
NUM_CLASSES = 10
VAL_PERCENT = 10  # val = the last 10% of the training batches, as in LRA (Tay et al., 2021, arXiv 2011.04006)
REFERENCE_SIZES = {"train": 45_000, "val": 5_000, "test": 10_000}

# ndarray.__reduce__ names numpy's array rebuilder (numpy.core.multiarray._reconstruct before numpy 2,
# numpy._core.multiarray._reconstruct since); the official pickles were written by Python 2 with the old name.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
# Python 3's pickle writes each bytes object under protocol 2 as _codecs.encode(str, "latin1").
_BYTES_ENCODING = "latin1"


def _latin1_bytes(*args: object) -> bytes:
    """What `_codecs.encode` may do in a CIFAR-10 batch: turn a str into bytes through latin1, nothing else.

    The real `_codecs.encode` runs any registered codec on any object; a pickle gets only this one use of it.
    """
    if len(args) != 2 or not isinstance(args[0], str) or args[1] != _BYTES_ENCODING:
        got = ", ".join(repr(arg) if isinstance(arg, str) and len(arg) < 40 else type(arg).__name__ for arg in args)
        raise pickle.UnpicklingError(
            f"refusing _codecs.encode({got}): a CIFAR-10 batch uses it only as _codecs.encode(str, 'latin1')"
        )
    return args[0].encode(_BYTES_ENCODING)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR-10 batch needs (numpy arrays, and bytes as Python 3
    writes them under protocol 2); anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"refusing to load the global {module}.{name}: a CIFAR-10 batch needs only numpy.ndarray, "
                f"numpy.dtype, numpy's _reconstruct and _codecs.encode (the file is not a CIFAR-10 batch, or was "
                f"altered)"
            )
        return allowed


class CifarBatch(NamedTuple):
    """One batch file: images (N, 3072) uint8, RGB planar (1024 R, 1024 G, 1024 B, each row-major 32×32);
    labels (N,) int64 in 0..9."""

    images: np.ndarray
    labels: np.ndarray


def read_cifar_batch(path: str | os.PathLike[str]) -> CifarBatch:
    """Read one CIFAR-10 python batch (a pickle of {b"data": uint8 (N, 3072), b"labels": [int]}: the official
    Python 2 files, or the same dict re-saved by Python 3 with protocol 2 to 4).

    Raises ValueError naming the file and what was expected if it is not a well-formed batch.
    """
    path = Path(path)
    with open(path, "rb") as file:
        try:
            batch = _CifarUnpickler(file, encoding="bytes").load()
        except Exception as error:  # a corrupt pickle can fail in many ways; all mean "not a CIFAR-10 batch"
            raise ValueError(f"{path}: not a readable CIFAR-10 python batch: {error}") from error
    expected = 'a dict with b"data": uint8 array (N, 3072) and b"labels": N integers 0-9'
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        got = f"the keys {list(batch)}" if isinstance(batch, dict) else f"a {type(batch).__name__}"
        raise ValueError(f"{path}: expected {expected}, got {got}")
    images = batch[b"data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        got = f"{images.dtype} array {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f'{path}: expected b"data" to be a uint8 array (N, 3072), got {got}')
    raw_labels = batch[b"labels"]
    if not isinstance(raw_labels, list | np.ndarray) or not all(
        isinstance(label, int | np.integer) and not isinstance(label, bool) for label in raw_labels
    ):
        raise ValueError(f'{path}: expected b"labels" to be a list of integers 0-9')
    labels = np.asarray(raw_labels, dtype=np.int64).reshape(-1)  # (N,)
    if len(labels) != len(images):
        raise ValueError(f'{path}: {len(images)} images in b"data" but {len(labels)} b"labels"')
    outside = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if outside.size:
        raise ValueError(f"{path}: labels must be 0-9, got {sorted(set(outside.tolist()))[:5]}")
    return CifarBatch(images, labels)


def cifar_grayscale(images: np.ndarray) -> np.ndarray:
    """(N, 1024) uint8 grayscale of (N, 3072) RGB-planar images, row-major, as `tf.image.rgb_to_grayscale` makes it.

    TensorFlow converts uint8 to float32 in [0, 1] (× 1/255), takes the weighted sum .2989 R + .5870 G + .1140 B
    in float32 and converts back with `convert_image_dtype`: × 255.5, truncated. So the result is one level
    lower than rounding for some colours (pure white stays 255).
    """
    planes = images.reshape(len(images), 3, PIXELS).astype(np.float32) * np.float32(1 / 255)  # (N, 3, 1024)
    gray = planes[:, 0] * np.float32(0.2989)  # (N, 1024)
    gray += planes[:, 1] * np.float32(0.5870)
    gray += planes[:, 2] * np.float32(0.1140)
    return (gray * np.float32(255.5)).astype(np.uint8)


def find_cifar_files(root: str | os.PathLike[str]) -> dict[str, Path]:
    """{file name: path} of data_batch_1..5 and test_batch under `root` (the batch folder or its parent)."""
    names = [*TRAIN_FILES, TEST_FILE]
    folder = find_layout(
        root,
        "Image (CIFAR-10)",
        LAYOUTS,
        names,
        f"the CIFAR-10 python version: {', '.join(names)} (Python pickles)",
        f"Download {CIFAR_URL}, unpack it (tar xzf) and pass the folder holding {CIFAR_FOLDER} (or that folder).",
    )
    return {name: folder / name for name in names}


def split_train_val(count: int) -> int:
    """How many of `count` training-batch images are train; the rest (the last 10%, rounded) are val."""
    return count - (count * VAL_PERCENT + 50) // 100


class ImageDataModule(LRADataModule):
    """LRA Image: the user's CIFAR-10 python batches under `root`, as 1024 grayscale tokens (vocabulary 256).

    Val is the last 10% of the training batches (45,000/5,000 of the full set), test is test_batch.
    There is no generated fallback: with root unset, preparing the data is an error saying where to get it.
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 256,
        protocol: Protocol = "faithful",
        eval_batches: int | None = None,
        num_workers: int = 1,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            max_length=PIXELS,
            protocol=protocol,
            eval_batches=eval_batches,
            num_workers=num_workers,
            cache_dir=cache_dir,
        )
        self.root = root

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    @property
    def fixed_length(self) -> bool:
        return True

    @property
    def cache_prefix(self) -> str:
        return "image-cifar10"

    def reference_sizes(self) -> dict[str, int]:
        return dict(REFERENCE_SIZES)

    def files(self) -> dict[str, Path]:
        """{file name: path} of the six batch files under root."""
        return find_cifar_files(self.root)

    def cache_settings(self) -> dict[str, Any]:
        return {
            "task": "image",
            "files": file_fingerprints(self.files()),
            "val_percent": VAL_PERCENT,
            "grayscale": "tf.image.rgb_to_grayscale",
        }

    def describe(self) -> str:
        folder = self.cache_path
        sizes = read_settings(folder)["sizes"] if is_cached(folder) else REFERENCE_SIZES
        counts = "/".join(f"{sizes[split]:,}" for split in ("train", "val", "test"))
        where = self.files()[TEST_FILE].parent
        return (
            f"Image: CIFAR-10 at {where}, 1024 grayscale tokens (TensorFlow's rgb_to_grayscale): {counts} "
            f"(train/val/test; val = the last {VAL_PERCENT}% of the training batches)"
        )

    def examples(self, split: str) -> Iterator[tuple[np.ndarray, int]]:
        files = self.files()
        if split == "test":
            batch = read_cifar_batch(files[TEST_FILE])
            yield from zip(cifar_grayscale(batch.images), batch.labels.tolist(), strict=True)
            return
        grays, labels = [], []
        for name in TRAIN_FILES:  # in order: data_batch_1 .. data_batch_5
            batch = read_cifar_batch(files[name])
            grays.append(cifar_grayscale(batch.images))
            labels.extend(batch.labels.tolist())
        tokens = np.concatenate(grays)  # (N, 1024)
        first_val = split_train_val(len(labels))
        rows = range(first_val) if split == "train" else range(first_val, len(labels))
        for row in rows:
            yield tokens[row], labels[row]
