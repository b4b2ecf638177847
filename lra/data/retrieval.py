"""Retrieval: ACL Anthology Network citation pairs (Radev et al., 2013, "The ACL Anthology Network Corpus"), as LRA
uses them: does paper 1 cite paper 2? Two documents per example, each byte-level tokenised (lra.data.bytes).

Reads the official release's `tsv_data/new_aan_pairs.{train,eval,test}.tsv` (no header; tab-separated
`label, id1, id2, text1, text2`; no quoting, as the official reader) as bytes; `eval` is the validation split.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lra.data.base import SPLITS, LRADataModule
from lra.data.bytes import VOCAB_SIZE, tokenize_bytes
from lra.data.cache import file_fingerprints
from lra.data.layout import RELEASE_URL, find_layout, release_layouts
from lra.protocol import Protocol

# Our split -> the release's file name.
FILES = {split: f"new_aan_pairs.{name}.tsv" for split, name in zip(SPLITS, ("train", "eval", "test"), strict=True)}
# Where the TSVs may sit under a root, in the order they are looked for.
LAYOUTS = release_layouts("tsv_data")
OFFICIAL_SIZES = {"train": 147_086, "val": 18_090, "test": 17_437}
COLUMNS = ("label", "id1", "id2", "text1", "text2")
NUM_CLASSES = 2
_LABELS = {b"0": 0, b"1": 1, b"0.0": 0, b"1.0": 1}


class AANRow(NamedTuple):
    """One row of an official AAN TSV (raw bytes), with its 1-based line number in the file."""

    line: int
    label: int
    id1: bytes
    id2: bytes
    text1: bytes
    text2: bytes


def _shorten(data: bytes, limit: int = 80) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(data)} bytes)"


def read_aan_tsv(path: str | os.PathLike[str]) -> Iterator[AANRow]:
    """Yield the rows of an official AAN TSV: 5 tab-separated columns, label 0/1 (or 0.0/1.0), no header.

    Lines end in \\n (a trailing \\r is dropped). Raises ValueError naming the file, line, what was found and
    what was expected on a row with another number of columns or another label; no row is skipped.
    """
    path = Path(path)
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
            line = line.removesuffix(b"\n").removesuffix(b"\r")
            fields = line.split(b"\t")
            if len(fields) != len(COLUMNS):
                raise ValueError(
                    f"{path}, line {number}: expected {len(COLUMNS)} tab-separated columns ({', '.join(COLUMNS)}), "
                    f"got {len(fields)}: {_shorten(line)!r}"
                )
            label = _LABELS.get(fields[0])
            if label is None:
                raise ValueError(
                    f"{path}, line {number}: expected the label 0 or 1 (or 0.0, 1.0), got {_shorten(fields[0])!r}"
                )
            yield AANRow(number, label, *fields[1:])


def find_aan_files(root: str | os.PathLike[str]) -> dict[str, Path]:
    """{split: path} of new_aan_pairs.{train,eval,test}.tsv under `root` in any accepted layout (see LAYOUTS)."""
    folder = find_layout(
        root,
        "Retrieval (AAN)",
        LAYOUTS,
        list(FILES.values()),
        "new_aan_pairs.train.tsv, new_aan_pairs.eval.tsv and new_aan_pairs.test.tsv (TSV, no header, "
        "label<TAB>id1<TAB>id2<TAB>text1<TAB>text2)",
        f"They come from the official LRA release {RELEASE_URL} (unpack it and pass the unpacked folder).",
    )
    return {split: folder / name for split, name in FILES.items()}


class RetrievalDataModule(LRADataModule):
    """Retrieval (AAN citation pairs, byte level, two towers, 2 classes) from the official TSVs under `root`.

    Validation is the release's `eval` split, test its `test` split; each document is truncated to max_length.
    """

    def __init__(
        self,
        root: str | None = None,
        max_length: int = 4000,
        batch_size: int = 16,
        protocol: Protocol = "faithful",
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
        self.root = root

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    @property
    def two_tower(self) -> bool:
        return True

    @property
    def cache_prefix(self) -> str:
        return "retrieval-aan"

    def reference_sizes(self) -> dict[str, int]:
        return dict(OFFICIAL_SIZES)

    def describe(self) -> str:
        return (
            f"Retrieval (AAN), official TSVs under {self.root}; validation: the eval split; "
            f"max_length {self.max_length} per document"
        )

    def cache_settings(self) -> dict[str, Any]:
        files = file_fingerprints(find_aan_files(self.root))
        return {"task": "retrieval", "files": files, "max_length": self.max_length}

    def examples(self, split: str) -> Iterator[tuple[tuple[np.ndarray, np.ndarray], int]]:
        path = find_aan_files(self.root)[split]
        for row in read_aan_tsv(path):
            where = f"{path}, line {row.line}"
            tokens_a = tokenize_bytes(row.text1, self.max_length, f"{where}, text1")
            tokens_b = tokenize_bytes(row.text2, self.max_length, f"{where}, text2")
            yield (tokens_a, tokens_b), row.label
