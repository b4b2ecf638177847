"""Text: IMDB movie reviews (Maas et al., 2011, "Learning Word Vectors for Sentiment Analysis"), as LRA uses them.

Reads the user's Stanford `aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` files as raw bytes, tokenised at byte
level (lra.data.bytes). LRA (and protocol 2's code) validates on the IMDB test split, so the checkpoint is chosen on
test data: the faithful protocol does that; the clean one holds out a seeded slice of train instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from lra.data.base import SPLITS, LRADataModule
from lra.data.bytes import VOCAB_SIZE, tokenize_bytes
from lra.data.layout import find_layout
from lra.protocol import Protocol

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# The root may be the aclImdb folder itself or the folder holding it.
LAYOUTS = (".", "aclImdb")
CLASSES = ("neg", "pos")  # label = index: neg 0, pos 1
IMDB_SPLITS = ("train", "test")
FOLDERS = tuple(f"{split}/{name}" for split in IMDB_SPLITS for name in CLASSES)
PER_CLASS = 12_500  # reviews per class in each of the official train and test splits
VALIDATIONS = ("train_slice", "test")
BY_PROTOCOL = {"faithful": "test", "clean": "train_slice"}
DEFAULT_VAL_FRACTION = 0.1


class Review(NamedTuple):
    """One review file and its label (0 = neg, 1 = pos)."""

    path: Path
    label: int


def find_imdb_folder(root: str | os.PathLike[str]) -> Path:
    """The aclImdb folder under `root` (root itself or root/aclImdb) holding {train,test}/{pos,neg}."""
    return find_layout(
        root,
        "Text (IMDB)",
        LAYOUTS,
        FOLDERS,
        "the Stanford IMDB folders train/pos, train/neg, test/pos and test/neg (of <id>_<rating>.txt reviews)",
        f"Download and unpack {IMDB_URL}, then pass the folder holding aclImdb/ (or aclImdb itself) as data.root.",
    )


def _review_order(entry: os.DirEntry[str]) -> tuple[bool, int, str]:
    # `<id>_<rating>.txt` by numeric id (so 2 before 10); any other name after those, by name.
    prefix = entry.name.split("_", 1)[0]
    return (not prefix.isdecimal(), int(prefix) if prefix.isdecimal() else 0, entry.name)


def _review_entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        reviews = sorted(
            (entry for entry in entries if entry.name.endswith(".txt") and entry.is_file()), key=_review_order
        )
    if not reviews:
        raise FileNotFoundError(
            f"{folder} holds no reviews: expected <id>_<rating>.txt files (the Stanford IMDB release {IMDB_URL})"
        )
    return reviews


def review_files(folder: Path) -> list[Path]:
    """The `*.txt` files of one pos/neg folder in a fixed order (numeric id, then name); anything else is ignored.

    Raises FileNotFoundError when the folder holds no review.
    """
    return [Path(entry.path) for entry in _review_entries(folder)]


def list_reviews(folder: Path, split: str) -> list[Review]:
    """Every review of an IMDB split ("train" or "test") under the aclImdb `folder`: neg first, then pos."""
    return [Review(path, label) for label, name in enumerate(CLASSES) for path in review_files(folder / split / name)]


def read_review(path: Path, max_length: int | None = None) -> np.ndarray:
    """Token ids of one review file's raw bytes, truncated to max_length; an empty file is a ValueError."""
    return tokenize_bytes(path.read_bytes(), max_length, f"{path}")


def held_out(count: int, val_fraction: float) -> int:
    """How many of one class's `count` training reviews the train slice holds out: the fraction rounded,
    at least 1 and leaving at least 1 for training."""
    return min(max(round(count * val_fraction), 1), count - 1)


def split_train(labels: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, validation indices), each ascending: a seeded random val_fraction of each class held out.

    Stratified, so validation keeps train's class balance (2,500 = 1,250 + 1,250 of the full 25,000 at 0.1).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    validation = []
    for label, name in enumerate(CLASSES):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            raise ValueError(
                f"validation='train_slice' needs at least 2 training reviews per class to hold some out; "
                f"train/{name} has {len(members)} (add reviews, or use validation='test')"
            )
        validation.append(rng.permutation(members)[: held_out(len(members), val_fraction)])
    held = np.sort(np.concatenate(validation))
    return np.setdiff1d(np.arange(len(labels)), held).tolist(), held.tolist()


def fingerprint(folder: Path) -> dict[str, Any]:
    """A cheap stand-in for one folder's reviews (no contents read): file count, total bytes, newest mtime."""
    stats = [entry.stat() for entry in _review_entries(folder)]
    return {
        "path": str(folder.resolve()),
        "files": len(stats),
        "bytes": sum(stat.st_size for stat in stats),
        "newest_mtime_ns": max(stat.st_mtime_ns for stat in stats),
    }


class TextDataModule(LRADataModule):
    """Text (IMDB sentiment, byte level, 2 classes) from the user's aclImdb folder under `root`.

    validation="test" is the official LRA practice (and the faithful protocol's): validation is the test split
    itself; validation="train_slice" (the clean protocol's) holds out a seeded, per-class val_fraction (0.1) of
    train for validation and trains on the rest. null follows the protocol. Test is always the official test split.
    """

    def __init__(
        self,
        root: str | None = None,
        max_length: int = 4000,
        protocol: Protocol = "faithful",
        validation: Literal["train_slice", "test"] | None = None,
        val_fraction: float | None = None,
        seed: int = 0,
        batch_size: int = 32,
        eval_batches: int | None = None,
        num_workers: int = 1,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            max_length=max_length,
            protocol=protocol,
            eval_batches=eval_batches,
            num_workers=num_workers,
            cache_dir=cache_dir,
        )
        if validation is not None and validation not in VALIDATIONS:
            raise ValueError(
                f"data.validation must be one of {', '.join(VALIDATIONS)} or null (the protocol's), got {validation!r}"
            )
        validation = validation or BY_PROTOCOL[self.protocol]
        if val_fraction is not None and validation == "test":
            raise ValueError(
                f"data.val_fraction ({val_fraction!r}) holds out a slice of train, which only data.validation "
                f"train_slice uses (the clean protocol's); under data.protocol {self.protocol} Text validates on "
                f"its test split: drop data.val_fraction, or set data.protocol clean"
            )
        val_fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float) or not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.root = root
        self.validation = validation
        self.val_fraction = float(val_fraction)
        self.seed = seed

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    @property
    def num_classes(self) -> int:
        return len(CLASSES)

    @property
    def cache_prefix(self) -> str:
        return "text-imdb"

    def reference_sizes(self) -> dict[str, int]:
        total = len(CLASSES) * PER_CLASS
        if self.validation == "test":
            return {"train": total, "val": total, "test": total}
        val = len(CLASSES) * held_out(PER_CLASS, self.val_fraction)
        return {"train": total - val, "val": val, "test": total}

    def describe(self) -> str:
        if self.validation == "test":
            validation = "the IMDB test split (official LRA practice; validation and test are the same data)"
        else:
            validation = f"seeded {self.val_fraction * 100:g}% slice of train, per class (seed {self.seed})"
            with contextlib.suppress(RuntimeError):  # before setup the count is unknown (not worth a listing)
                validation += f", {len(self.dataset('val')):,} reviews"
        return f"Text (IMDB), reviews under {self.root}; validation: {validation}; max_length {self.max_length}"

    def cache_settings(self) -> dict[str, Any]:
        folder = find_imdb_folder(self.root)
        settings: dict[str, Any] = {
            "task": "text",
            "folders": {name: fingerprint(folder / name) for name in FOLDERS},
            "max_length": self.max_length,
            "validation": self.validation,
        }
        if self.validation == "train_slice":
            settings.update(val_fraction=self.val_fraction, seed=self.seed)
        return settings

    def reviews(self, split: str) -> list[Review]:
        """The reviews of one of our splits (train, val or test), in the order they are cached."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        folder = find_imdb_folder(self.root)
        if split == "test" or (split == "val" and self.validation == "test"):
            return list_reviews(folder, "test")
        reviews = list_reviews(folder, "train")
        if self.validation == "test":
            return reviews
        train, val = split_train([review.label for review in reviews], self.val_fraction, self.seed)
        return [reviews[index] for index in (train if split == "train" else val)]

    def examples(self, split: str) -> Iterator[tuple[np.ndarray, int]]:
        for review in self.reviews(split):
            yield read_review(review.path, self.max_length), review.label
