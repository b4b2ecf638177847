"""A small IMDB folder in the Stanford layout (Maas et al., 2011): aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt.

Alongside the reviews it writes the release's other files (unsup/, urls_*.txt, labeledBow.feat, imdb.vocab,
README), which a reader must ignore.
"""

from __future__ import annotations

import random
from pathlib import Path

POSITIVE = ("great", "wonderful", "moving", "superb", "charming", "naïve", "délicieux")
NEGATIVE = ("awful", "boring", "clumsy", "dreadful", "tedious", "mauvais", "ennuyé")
NEUTRAL = ("the", "film", "plot", "actor", "scene", "and", "was", "a", "story", "ending")


def review_text(rng: random.Random, words: tuple[str, ...]) -> str:
    """A short review: neutral words mixed with the class's words (some of them non-ASCII)."""
    return " ".join(rng.choice(words if rng.random() < 0.3 else NEUTRAL) for _ in range(rng.randint(5, 30))) + "."


def write_imdb(root: Path, per_split_class: int = 4, seed: int = 0) -> Path:
    """Write `root/aclImdb` with `per_split_class` UTF-8 reviews in each of train/test × pos/neg (ids 0..n-1,
    ratings 7-10 for pos and 1-4 for neg); the same seed writes the same bytes. Returns `root` (pass as data.root)."""
    rng = random.Random(seed)
    folder = root / "aclImdb"
    for split in ("train", "test"):
        for name, words, ratings in (("neg", NEGATIVE, (1, 4)), ("pos", POSITIVE, (7, 10))):
            reviews = folder / split / name
            reviews.mkdir(parents=True, exist_ok=True)
            for index in range(per_split_class):
                text = review_text(rng, words)
                (reviews / f"{index}_{rng.randint(*ratings)}.txt").write_bytes(text.encode())
            (folder / split / f"urls_{name}.txt").write_text("http://www.imdb.com/title/tt0000000/usercomments\n")
        (folder / split / "labeledBow.feat").write_text("9 0:1 1:2\n")
    (folder / "train" / "unsup").mkdir(exist_ok=True)
    (folder / "train" / "unsup" / "0_0.txt").write_text("an unlabelled review\n")
    (folder / "train" / "urls_unsup.txt").write_text("http://www.imdb.com/title/tt0000000/usercomments\n")
    (folder / "imdb.vocab").write_text("the\nand\n")
    (folder / "README").write_text("Large Movie Review Dataset v1.0 (a small stand-in written by the tests)\n")
    return root
