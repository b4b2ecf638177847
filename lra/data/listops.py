"""ListOps (Nangia & Bowman, 2018; the LRA long version): official TSV reader, tokenisers and DataModule.

Official and generated data go through the same reader and one of two tokenisations into a fixed vocabulary:
- `alphanumeric`, the official LRA pipeline's (and so protocol 2's): TensorFlow Datasets' `Tokenizer` keeps only
  alphanumeric runs, so every `(`, `)`, `[` and `]` is dropped (`( ( [MAX 2 ) 9 ] )` -> `MAX 2 9`); a word
  outside the vocabulary gets the out-of-vocabulary id, as its `TokenTextEncoder` gives it.
- `closing_x` (S4's fix, Gu et al., 2022): `]` becomes `X`, `(` and `)` are dropped, so the tree stays readable;
  an unknown token is an error.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from lra.data.base import SPLITS, LRADataModule
from lra.data.cache import cache_folder, cache_root, file_fingerprints, generated_folder
from lra.data.checks import check_int, check_workers
from lra.data.generate.listops import GENERATOR_VERSION, HEADER, ListOpsSpec, generate_listops
from lra.data.layout import RELEASE_URL, find_layout, release_layouts
from lra.protocol import Protocol

log = logging.getLogger("lra.data")

# Fixed vocabularies (never learned from data): 0 is padding, digits 0-9 are 1-10, the operators 11-14.
VOCAB: dict[str, int] = {
    **{str(digit): digit + 1 for digit in range(10)},
    "[MIN": 11,
    "[MAX": 12,
    "[MED": 13,
    "[SM": 14,
    "X": 15,
}
ALPHANUMERIC_VOCAB: dict[str, int] = {"MIN": 11, "MAX": 12, "MED": 13, "SM": 14, **{str(d): d + 1 for d in range(10)}}
OUT_OF_VOCABULARY = 15  # TokenTextEncoder's one out-of-vocabulary id, right after the vocabulary
VOCAB_SIZE = 16
Tokenization = Literal["alphanumeric", "closing_x"]
TOKENIZATIONS: tuple[str, ...] = ("alphanumeric", "closing_x")
BY_PROTOCOL: dict[str, str] = {"faithful": "alphanumeric", "clean": "closing_x"}
_NON_ALPHANUMERIC = re.compile(r"\W+")  # tfds.deprecated.text.Tokenizer's split (alphanum_only=True)
NUM_CLASSES = 10
OFFICIAL_SIZES = {"train": 96_000, "val": 2_000, "test": 2_000}
# Where basic_{train,val,test}.tsv may sit under a root, in the order they are looked for.
LAYOUTS = release_layouts("listops-1000")

_CLEAN = str.maketrans({"(": None, ")": None, "]": "X"})
_LABELS = {str(label): label for label in range(NUM_CLASSES)}


class ListOpsRow(NamedTuple):
    """One data row of an official-format TSV, with its 1-based line number in the file."""

    line: int
    source: str
    label: int


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def read_listops_tsv(path: str | os.PathLike[str]) -> Iterator[ListOpsRow]:
    """Yield the rows of an official ListOps TSV (header `Source\\tTarget`, then `<expression>\\t<0-9>`).

    Raises ValueError naming the file, line, content and what was expected on any malformed line.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\r\n")
        if header != HEADER:
            raise ValueError(f"{path}, line 1: expected the header {HEADER!r}, got {_shorten(header)!r}")
        for number, line in enumerate(file, start=2):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 2:
                raise ValueError(
                    f"{path}, line {number}: expected 2 tab-separated fields (Source, Target), "
                    f"got {len(fields)}: {_shorten(line.rstrip())!r}"
                )
            source, target = fields
            label = _LABELS.get(target.strip())
            if label is None:
                raise ValueError(f"{path}, line {number}: expected a Target label 0-9, got {_shorten(target)!r}")
            yield ListOpsRow(number, source, label)


def tokenize_listops(
    source: str,
    max_length: int | None = None,
    where: str = "ListOps source",
    tokenization: Tokenization = "closing_x",
) -> np.ndarray:
    """Token ids (uint8) of one Source expression, truncated to max_length; `where` names it in errors."""
    if tokenization == "alphanumeric":
        words = [word for word in _NON_ALPHANUMERIC.split(source) if word]
        ids = bytes(ALPHANUMERIC_VOCAB.get(word, OUT_OF_VOCABULARY) for word in words)
    elif tokenization == "closing_x":
        try:
            ids = bytes(map(VOCAB.__getitem__, source.translate(_CLEAN).split()))
        except KeyError as error:
            raise ValueError(
                f"{where}: unknown ListOps token {error.args[0]!r}; expected digits 0-9, [MIN, [MAX, [MED, [SM, "
                f"] and parentheses"
            ) from None
    else:
        raise ValueError(f"data.tokenization must be one of {', '.join(TOKENIZATIONS)}, got {tokenization!r}")
    if not ids:
        raise ValueError(f"{where}: empty expression")
    return np.frombuffer(ids[:max_length], dtype=np.uint8)


def find_listops_files(root: str | os.PathLike[str]) -> dict[str, Path]:
    """{split: path} of basic_{train,val,test}.tsv under `root` in any accepted layout (see LAYOUTS)."""
    names = [f"basic_{split}.tsv" for split in SPLITS]
    folder = find_layout(
        root,
        "ListOps",
        LAYOUTS,
        names,
        "basic_train.tsv, basic_val.tsv and basic_test.tsv (TSV, header 'Source<TAB>Target')",
        f"They come from the official LRA release {RELEASE_URL} (unpack it and pass the unpacked folder), or "
        f"from `lra data generate listops --out DIR` (pass DIR); or leave data.root unset to generate and cache "
        f"them automatically.",
    )
    return {split: folder / name for split, name in zip(SPLITS, names, strict=True)}


class ListOpsDataModule(LRADataModule):
    """ListOps: official TSVs under `root`, or (root=None) generated with the official algorithm and cached.

    Validation uses ListOps' `val` split and test its `test` split. Generated data depends only on
    (seed, counts, spec); its TSVs are kept in the cache root, so changing max_length re-tokenises without
    regenerating.
    """

    def __init__(
        self,
        root: str | None = None,
        num_train: int = 96000,
        num_val: int = 2000,
        num_test: int = 2000,
        seed: int = 0,
        spec: ListOpsSpec = ListOpsSpec(),  # noqa: B008 (a frozen dataclass: immutable)
        max_length: int = 2000,
        batch_size: int = 32,
        protocol: Protocol = "faithful",
        tokenization: Tokenization | None = None,
        eval_batches: int | None = None,
        num_workers: int = 1,
        cache_dir: str | None = None,
        generate_workers: int | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            max_length=max_length,
            protocol=protocol,
            eval_batches=eval_batches,
            num_workers=num_workers,
            cache_dir=cache_dir,
        )
        if tokenization is not None and tokenization not in TOKENIZATIONS:
            raise ValueError(
                f"data.tokenization must be one of {', '.join(TOKENIZATIONS)} or null, got {tokenization!r}"
            )
        # null: the protocol's own (faithful: alphanumeric, clean: closing_x); a value: an explicit ablation.
        self.tokenization: str = tokenization or BY_PROTOCOL[self.protocol]
        for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            check_int(name, value, 1)
        if not isinstance(spec, ListOpsSpec):
            raise ValueError(f"spec must be a ListOpsSpec, got {spec!r}")
        check_workers("generate_workers", generate_workers)
        self.root = root
        self.num_train = num_train
        self.num_val = num_val
        self.num_test = num_test
        self.seed = seed
        self.spec = spec
        self.generate_workers = generate_workers

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    @property
    def cache_prefix(self) -> str:
        return "listops-generated" if self.root is None else "listops-official"

    def reference_sizes(self) -> dict[str, int]:
        if self.root is None:
            return {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        return dict(OFFICIAL_SIZES)

    def describe(self) -> str:
        source = f"official TSVs under {self.root}" if self.root is not None else f"generated (seed {self.seed})"
        return f"ListOps, {source}; validation: the val split; max_length {self.max_length}"

    def token_summary(self) -> str:
        tokens = {
            "alphanumeric": "alphanumeric tokens (brackets dropped: MAX 2 9)",
            "closing_x": "closing_x tokens (] as X: [MAX 2 9 X)",
        }[self.tokenization]
        return f"{tokens}; {super().token_summary()}"

    def cache_settings(self) -> dict[str, Any]:
        if self.root is None:
            return {
                "task": "listops",
                "generation": self.generation_settings(),
                "max_length": self.max_length,
                "tokenization": self.tokenization,
            }
        files = file_fingerprints(find_listops_files(self.root))
        return {"task": "listops", "files": files, "max_length": self.max_length, "tokenization": self.tokenization}

    def generation_settings(self) -> dict[str, Any]:
        """Everything the generated TSVs depend on (not the number of processes)."""
        return {
            "generator_version": GENERATOR_VERSION,
            "num_train": self.num_train,
            "num_val": self.num_val,
            "num_test": self.num_test,
            "seed": self.seed,
            "spec": dataclasses.asdict(self.spec),
        }

    def tsv_files(self) -> dict[str, Path]:
        """{split: TSV path}: the official files under root, or the generated ones (generated if missing)."""
        if self.root is not None:
            return find_listops_files(self.root)
        settings = self.generation_settings()
        folder = generated_folder(
            cache_folder(cache_root(self.cache_dir), "listops-generated-tsv", settings),
            settings,
            lambda out: generate_listops(
                out,
                self.num_train,
                self.num_val,
                self.num_test,
                self.seed,
                self.spec,
                self.generate_workers,
                cache_dir=self.cache_dir,
            ),
            f"{self.num_train}/{self.num_val}/{self.num_test} ListOps examples (seed {self.seed}, {self.spec})",
        )
        return {split: folder / f"basic_{split}.tsv" for split in SPLITS}

    def examples(self, split: str) -> Iterator[tuple[np.ndarray, int]]:
        path = self.tsv_files()[split]
        for row in read_listops_tsv(path):
            yield (
                tokenize_listops(row.source, self.max_length, f"{path}, line {row.line}", self.tokenization),
                row.label,
            )
