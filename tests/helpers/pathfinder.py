"""Small Pathfinder folders (Linsley et al., 2018) in the LRA release's layout: random grayscale PNGs and metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lra.data.pathfinder import DIFFICULTIES, split_indices


def metadata_line(shard: int, index: int, label: int, difficulty: int) -> str:
    """A metadata line as the release writes it: 11 whitespace-separated fields, label 4th."""
    return f"imgs/{shard} sample_{index}.png {index} {label} 1.0 {difficulty} {difficulty // 3} 2 0.5 1 1\n"


def write_pathfinder(
    root: Path,
    resolution: int = 32,
    difficulty: int = 14,
    n: int = 40,
    seed: int = 0,
    shard_size: int = 3,
    split_seed: int = 0,
    empty_sample_172: bool = False,
) -> Path:
    """Write root/pathfinder{resolution}/{level}/{imgs/<k>/sample_<i>.png, metadata/<k>.npy}; return root.

    `n` random mode-L PNGs in shards of `shard_size` (so k runs past 9 and must sort numerically). Labels alternate
    within each split of PathfinderDataModule(seed=split_seed), so every split holds both classes (n >= 20).
    With empty_sample_172, shard 0 also lists imgs/0/sample_172.png as an empty file (the release's known defect).
    """
    level = root / f"pathfinder{resolution}" / DIFFICULTIES[difficulty]
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    for indices in split_indices(n, split_seed).values():
        labels[indices] = np.arange(len(indices)) % 2
    lines: dict[int, list[str]] = {}
    for position in range(n):
        shard, index = divmod(position, shard_size)
        folder = level / "imgs" / str(shard)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(resolution, resolution), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"sample_{index}.png")
        lines.setdefault(shard, []).append(metadata_line(shard, index, int(labels[position]), difficulty))
    if empty_sample_172:
        (level / "imgs" / "0" / "sample_172.png").write_bytes(b"")
        lines[0].insert(1, metadata_line(0, 172, 0, difficulty))
    (level / "metadata").mkdir(parents=True)
    for shard, shard_lines in lines.items():
        (level / "metadata" / f"{shard}.npy").write_text("".join(shard_lines))
    return root
