"""Small CIFAR-10 python batches (Krizhevsky, 2009) written byte for byte the way the official Python 2 pickles are,
and the same dicts as Python 3 re-saves them."""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lra.data.image import CIFAR_FOLDER, TEST_FILE, TRAIN_FILES

_RECONSTRUCT = np.empty(0).__reduce__()[0]


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: bytes and str as Python 2 `str` (SHORT_BINSTRING / BINSTRING) and numpy's
    array rebuilder under its pre-numpy-2 name numpy.core.multiarray._reconstruct, as in the official files."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj: bytes) -> None:
        size = len(obj)
        prefix = pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else pickle.BINSTRING + struct.pack("<i", size)
        self.write(prefix + obj)
        self.memoize(obj)

    def save_text(self, obj: str) -> None:
        self.save_py2_string(obj.encode("latin-1"))

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_text


def py2_pickle(obj: Any) -> bytes:
    """`obj` pickled as Python 2's cPickle.dump(obj, protocol=2) wrote it."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


class Py3Pickler(pickle._Pickler):
    """Python 3's pickler (bytes under protocol 2 as _codecs.encode(str, "latin1")), naming numpy's array rebuilder
    `numpy_module`._reconstruct whatever numpy is installed: numpy.core.multiarray before numpy 2, numpy._core after."""

    def __init__(self, file: io.BytesIO, protocol: int, numpy_module: str) -> None:
        super().__init__(file, protocol=protocol)
        self.numpy_module = numpy_module

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is not _RECONSTRUCT:
            super().save_global(obj, name)
            return
        if self.proto >= 4:
            self.save(self.numpy_module)
            self.save("_reconstruct")
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{self.numpy_module}\n_reconstruct\n".encode())
        self.memoize(obj)


def py3_pickle(obj: Any, protocol: int, numpy_module: str) -> bytes:
    """`obj` as Python 3's pickle.dump(obj, protocol=protocol) writes it under a numpy whose arrays rebuild through
    `numpy_module`._reconstruct."""
    buffer = io.BytesIO()
    Py3Pickler(buffer, protocol, numpy_module).dump(obj)
    return buffer.getvalue()


def cifar_batch(images: np.ndarray, labels: Sequence[int], name: str = "training batch 1 of 5") -> dict[bytes, Any]:
    """The dict of an official batch: images (N, 3072) uint8 RGB planar, labels N ints 0-9."""
    return {
        b"batch_label": name.encode(),
        b"labels": [int(label) for label in labels],
        b"data": np.ascontiguousarray(images, dtype=np.uint8),
        b"filenames": [f"image_{index}.png".encode() for index in range(len(labels))],
    }


def write_cifar(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """Write root/cifar-10-batches-py/{data_batch_1..5,test_batch} with `per_batch` random images each; return root.

    Labels cycle 0..9 over the concatenated training batches and over test_batch, so with per_batch a multiple of
    20 every split (train, val = the last 10% of training images, test) holds every class.
    """
    folder = root / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [*TRAIN_FILES, TEST_FILE]
    for number, name in enumerate(names):
        images = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        first = 0 if name == TEST_FILE else number * per_batch
        labels = [(first + index) % 10 for index in range(per_batch)]
        description = "testing batch 1 of 1" if name == TEST_FILE else f"training batch {number + 1} of 5"
        (folder / name).write_bytes(py2_pickle(cifar_batch(images, labels, description)))
    return root
