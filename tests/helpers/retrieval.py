"""Small AAN citation-pair TSVs in the official LRA layout (Radev et al., 2013; Tay et al., 2021):
`new_aan_pairs.{train,eval,test}.tsv`, no header, `label<TAB>id1<TAB>id2<TAB>text1<TAB>text2`."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ("parsing", "the", "corpus", "of", "annotated", "treebank", "we", "propose", "a", "model", "für", "données")


def aan_row(rng: random.Random, label: int, label_text: str) -> str:
    """One TSV line: label, two paper ids, two short documents (some non-ASCII words)."""
    ids = [f"{rng.choice('ACEHJNPW')}{rng.randint(0, 99):02d}-{rng.randint(1000, 9999)}" for _ in range(2)]
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) for _ in range(2)]
    return "\t".join([label_text, *ids, *texts]) + "\n"


def write_aan(
    root: Path,
    sizes: tuple[int, int, int] = (8, 4, 4),
    layout: str = "lra_release/lra_release/tsv_data",
    seed: int = 0,
) -> Path:
    """Write (train, eval, test) = `sizes` rows under `root/layout` (the archive's nested layout by default);
    labels alternate 1, 0, ... so each split of 2 or more rows has both. The train file writes labels as the
    integers 0/1 and the others as 0.0/1.0 (the reader accepts both). Returns `root` (pass as data.root)."""
    rng = random.Random(seed)
    folder = root / layout
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in zip(("train", "eval", "test"), sizes, strict=True):
        labels = [(index + 1) % 2 for index in range(size)]
        forms = ("0", "1") if name == "train" else ("0.0", "1.0")
        rows = [aan_row(rng, label, forms[label]) for label in labels]
        (folder / f"new_aan_pairs.{name}.tsv").write_bytes("".join(rows).encode())
    return root
